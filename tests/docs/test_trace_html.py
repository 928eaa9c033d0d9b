"""`write_trace_html` and `deal generate --trace-html`: one self-contained page of a traced search."""

from __future__ import annotations

import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from deal_core import DeAL
from deal_core.backends.table import TableBackend
from deal_core.result import CandidateTrace
from deal_core.rewards import FunctionReward, Keywords
from deal_core.trace_html import trace_html, write_trace_html

ROOT = Path(__file__).resolve().parents[2]


class _Rows(HTMLParser):
    """The page's step sections and each one's candidate rows (their status), read back from the HTML."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[list[str]] = []
        self.remote: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.steps.append([])
        if tag == "tr" and "data-status" in attrs:
            self.steps[-1].append(attrs["data-status"])
        self.remote += [v for k, v in attrs.items() if k in ("src", "href") and v]
        if tag in ("script", "link", "img", "iframe"):
            self.remote.append(tag)


def _read(text: str) -> _Rows:
    rows = _Rows()
    rows.feed(text)
    return rows


def test_the_page_holds_every_step_and_candidate_of_a_table_backend_search():
    vowels = FunctionReward(lambda prompts, texts: [sum(c in "aeiou" for c in t) / max(len(t), 1) for t in texts],
                            bounds=(0.0, 1.0), label="vowels")
    deal = DeAL(TableBackend(), rewards=vowels, use_chat_template=False, max_new_tokens=6)
    result = deal.generate("the dog runs in the park", top_k=4, lookahead=3, trace=True)
    page = _read(trace_html(result, prompt="the dog runs in the park"))
    assert page.steps == [[c.status for c in step.candidates] for step in result.trace]
    assert all(statuses.count("won") == 1 for statuses in page.steps)
    assert page.remote == []  # no script, stylesheet link, image or frame: nothing to fetch


def test_text_from_the_model_is_escaped():
    deal = DeAL(TableBackend(), rewards=Keywords(["dog"]), use_chat_template=False, max_new_tokens=3)
    result = deal.generate("the dog", top_k=3, lookahead=2, trace=True)
    step = result.trace[0]
    step.candidates[0] = CandidateTrace(token="<script>alert(1)</script>", lookahead='" onload="x', logprob=-1.0,
                                        status=step.candidates[0].status)
    text = trace_html(result, prompt="<b>hi</b>")
    assert "<script>" not in text and "&lt;script&gt;" in text and "&lt;b&gt;hi" in text
    assert _read(text).remote == []


def test_a_result_without_a_trace_is_refused(tmp_path):
    result = DeAL(TableBackend(), use_chat_template=False, max_new_tokens=2).generate("the dog")
    with pytest.raises(ValueError, match="trace=True"):
        write_trace_html(result, tmp_path / "t.html")


@pytest.mark.slow
def test_cli_writes_the_trace_page_of_the_embedded_model(tmp_path):
    out = tmp_path / "trace.html"
    proc = subprocess.run([sys.executable, "-m", "deal_core.cli", "generate", "Write a sentence about the sea.",
                           "--keywords", "sea,boat", "--max-new-tokens", "6", "--trace-html", str(out), "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    page = _read(out.read_text())
    assert len(page.steps) >= 1 and all(s.count("won") == 1 for s in page.steps)
    assert '"trace"' in proc.stdout  # --trace-html sets trace: the JSON carries it too
    greedy = subprocess.run([sys.executable, "-m", "deal_core.cli", "generate", "Hi", "--greedy", "--trace-html",
                             str(tmp_path / "g.html")], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert greedy.returncode == 2 and "leave out --greedy" in greedy.stderr


def test_the_concepts_page_embeds_a_committed_trace():
    page = (ROOT / "docs" / "assets" / "trace-example.html").read_text()
    rows = _read(page)
    assert len(rows.steps) >= 5 and all(s.count("won") == 1 for s in rows.steps)
    assert re.search(r'<iframe src="assets/trace-example.html"', (ROOT / "docs" / "concepts.md").read_text())
