"""The built site and a search-trace page in a real browser: headless Chromium (the OS packages `chromium` and
`chromium-driver`, installed by `make browser`; never a browser that downloads itself), driven by Selenium.

Each page must render without console errors and load nothing from another machine; the trace page must show
every step of the search with each of its candidates."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = ["index.html", "concepts.html", "rewards.html", "reference/settings.html", "reference/python-api.html",
         "results/speed.html", "assets/trace-example.html"]
LOCAL = ("file://", "data:", "blob:", "about:")


def _chromium():
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (browser and driver):
        pytest.skip("headless Chromium is not installed: `make browser` installs the OS packages chromium and "
                    "chromium-driver (it needs apt-get as root or sudo)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--no-first-run", "--disable-component-update"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


@pytest.fixture(scope="module")
def browser():
    driver = _chromium()
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(out)], cwd=ROOT,
                   check=True, env=env, timeout=600)
    return out


def _open(browser, path: Path) -> dict:
    """Load a page; its console errors and every resource it (and its frames) asked for."""
    browser.get_log("browser")  # drop what earlier pages logged
    browser.get(path.as_uri())
    browser.execute_script("return document.readyState")
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    names = browser.execute_script(
        "const names = performance.getEntriesByType('resource').map(e => e.name);"
        "for (const f of document.querySelectorAll('iframe')) {"
        "  try { names.push(...f.contentWindow.performance.getEntriesByType('resource').map(e => e.name)); }"
        "  catch (e) { names.push(f.src); } }"  # a file:// frame is another origin: its own page is opened too
        "return names;")
    return {"errors": errors, "resources": names, "title": browser.title}


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_site_pages_render_offline(browser, site, page):
    seen = _open(browser, site / page)
    assert seen["title"], page
    assert seen["errors"] == [], f"{page}: console errors {seen['errors']}"
    remote = [n for n in seen["resources"] if not n.startswith(LOCAL)]
    assert remote == [], f"{page} asked for {remote}"
    if page == "concepts.html":  # the embedded trace is there and loaded
        assert any(n.endswith("trace-example.html") for n in seen["resources"])


@pytest.mark.slow
def test_trace_page_shows_every_step_and_candidate(browser, tmp_path):
    """A real search of the embedded model, traced, rendered and read back from the browser's DOM."""
    from selenium.webdriver.common.by import By

    from deal_core import DeAL
    from deal_core.rewards import Keywords
    from deal_core.trace_html import write_trace_html

    prompt = "Write one sentence that uses all of these words: sun, sea."
    result = DeAL().generate(prompt, rewards=Keywords(["sun", "sea"]), max_new_tokens=6, trace=True)
    page = write_trace_html(result, tmp_path / "trace.html", prompt=prompt)
    seen = _open(browser, page)
    assert seen["errors"] == [] and [n for n in seen["resources"] if not n.startswith(LOCAL)] == []
    steps = browser.find_elements(By.CSS_SELECTOR, "section.step")
    assert len(steps) == len(result.trace) > 0
    for step, traced in zip(steps, result.trace, strict=True):
        rows = step.find_elements(By.CSS_SELECTOR, "tbody tr")
        assert [r.get_attribute("data-status") for r in rows] == [c.status for c in traced.candidates]
        assert len([r for r in rows if r.get_attribute("data-status") == "won"]) == 1
        assert rows[0].is_displayed()
    pruned = browser.find_elements(By.CSS_SELECTOR, "tr.pruned")
    if pruned:  # greyed: a lighter text colour than the winner's
        won = browser.find_element(By.CSS_SELECTOR, "tr.won")
        assert pruned[0].value_of_css_property("color") != won.value_of_css_property("color")
