"""The documentation: a strict build, reference pages that match the code, results pages that match their data,
and user text without internal words."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from deal_core import docs_gen
from deal_core.bench import report

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
USER_TEXT = [ROOT / "README.md", *sorted(p for p in DOCS.rglob("*.md"))]
README_MAX_LINES = 250
# Words that belong to the project's working notes, not to a user's page.
BANNED = [re.compile(p, re.IGNORECASE) for p in (
    r"\bissues? #?\d+", r"\bthis round\b", r"\bprevious session\b", r"\bthis session\b", r"\bearlier round\b",
    r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,40}\b",  # a commit hash: hex with letters and digits
)]


def test_mkdocs_builds_strict(tmp_path):
    """`mkdocs build --strict`: a broken link, a missing page or a bad snippet fails the build."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    site = tmp_path / "site"
    home = (site / "index.html").read_text()
    assert "Quick start" in home and "--trace-html" in home and "8&lt;" not in home  # the README's, included
    api = (site / "reference" / "python-api.html").read_text()
    assert "generate_batch" in api and "write_trace_html" in api  # mkdocstrings rendered the docstrings
    for html in site.rglob("*.html"):  # offline: nothing the page loads comes from another host
        text = html.read_text()
        assert not re.search(r"""(?:src|href)=["']https?://(?:fonts|cdn|unpkg|cdnjs)""", text), html


def test_reference_pages_match_the_code():
    """docs/reference is what `python -m deal_core.docs_gen` writes from DeALConfig, ServerLimits, the reward
    registry and the CLI; a setting, limit, reward or option changed without its page fails here."""
    assert docs_gen.drifted(DOCS / "reference") == [], "run `python -m deal_core.docs_gen`"


def test_reference_drift_is_detected(tmp_path):
    docs_gen.write(tmp_path)
    assert docs_gen.drifted(tmp_path) == []
    page = tmp_path / "settings.md"
    page.write_text(page.read_text().replace("| `top_k` | `top_k` | `--top-k` | shared | `10` |",
                                             "| `top_k` | `top_k` | `--top-k` | shared | `7` |"))
    assert docs_gen.drifted(tmp_path) == ["settings.md"]


def test_reference_pages_hold_every_declaration():
    from deal_core.config import DeALConfig
    from deal_core.rewards import REGISTRY
    from deal_core.serving.limits import ServerLimits

    settings, limits, rewards = (DOCS / "reference" / n for n in ("settings.md", "server-limits.md", "rewards.md"))
    assert all(f"| `{name}` |" in settings.read_text() for name in DeALConfig.model_fields)
    assert all(f"| `{name}` |" in limits.read_text() for name in ServerLimits.model_fields)
    assert all(f"`{name}`" in rewards.read_text() for name in REGISTRY)
    cli = (DOCS / "reference" / "cli.md").read_text()
    assert all(f"## `deal {c}`" in cli for c in ("generate", "batch", "serve", "bench", "prepare"))
    assert "--trace-html" in cli and "--report" in cli


def test_results_pages_match_their_data():
    """Each docs/results page is what deal_core/bench/report.py writes from the JSON beside it."""
    data = sorted((DOCS / "results").glob("*.json"))
    assert data
    stale = [str(p) for p in data if p.with_suffix(".md").read_text() != report.page_from_data(p.relative_to(ROOT))]
    assert stale == [], "run `python -m deal_core.bench.report docs/results/*.json`"


def test_results_hold_only_current_runs_and_each_is_linked():
    results = DOCS / "results"
    kinds = {p.suffix for p in results.rglob("*") if p.is_file()}
    assert kinds <= {".json", ".md", ".png"}, kinds  # no scripts, logs or notes in the results
    assert not [p for p in results.rglob("*") if re.search(r"_(before|after|prev|markup|recheck|old|tmp)\b", p.stem)]
    benchmarks = (DOCS / "benchmarks.md").read_text()
    unlinked = [p.name for p in results.glob("*.md") if f"(results/{p.name})" not in benchmarks]
    assert unlinked == []
    for page in results.glob("*.md"):  # the facts every page states
        text = page.read_text()
        assert all(f"| {fact} |" in text for fact in ("command", "date", "machine", "model", "data")), page


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; the rest belongs in docs/"


@pytest.mark.parametrize("path", USER_TEXT, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_internal_words_in_user_text(path):
    text = path.read_text()
    found = [m.group(0) for pattern in BANNED for m in pattern.finditer(text)]
    assert found == [], f"{path.relative_to(ROOT)}: {found}"


def test_readme_lists_every_extra():
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    readme = (ROOT / "README.md").read_text()
    missing = [e for e in extras if e != "embedded" and f"| `{e}` |" not in readme]
    assert missing == []
    assert any(d.startswith("langchain>") for d in extras["langchain"])  # create_agent comes from `langchain`
