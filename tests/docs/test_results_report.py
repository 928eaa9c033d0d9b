"""`deal bench TASK --report PAGE.md`: a results page written from the bench's own report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from deal_core.bench import report

ROOT = Path(__file__).resolve().parents[2]


def test_a_page_states_command_date_machine_split_table_and_plot(tmp_path):
    data = {"task": "harmless", "environment": {"model": "M", "device": "cpu", "cpus": 2, "python": "3.11"},
            "settings": {"split": "test", "limit": 4}, "summary": {"greedy": {"refuses": 0.25}},
            "table": "| condition | refuses |\n|---|---|\n| greedy | 0.250 |"}
    (tmp_path / "harmless.png").write_bytes(b"\x89PNG")
    page = report.write_page(report.stamp(data, "deal bench harmless --split test"), tmp_path / "harmless.md",
                             tmp_path / "harmless.json").read_text()
    for fact in ("| command | `deal bench harmless --split test` |", "| date | 20", "| machine |",
                 "| model | M (cpu) |", "held-out rows", "| greedy | 0.250 |", "![harmless](harmless.png)",
                 "- `limit`: `4`"):
        assert fact in page, fact
    assert json.loads((tmp_path / "harmless.json").read_text())["command"] == "deal bench harmless --split test"
    assert report.page_from_data(tmp_path / "harmless.json") == page  # the page is its data, written again


def test_a_report_without_a_table_gets_one_from_its_summary():
    page = report.page({"task": "speed", "summary": {"greedy": {"ms_per_token": 40.0}, "deal": {"ms_per_token": 90.5}},
                        "split": "dev"}, "speed.json")
    assert "| greedy | 40 |" in page and "| deal | 90.5 |" in page and "`dev`: development rows" in page


@pytest.mark.slow
def test_deal_bench_report_writes_the_page(tmp_path):
    page = tmp_path / "results" / "length.md"
    proc = subprocess.run([sys.executable, "-m", "deal_core.cli", "bench", "length", "--limit", "2",
                           "--max-new-tokens", "8", "--report", str(page)], cwd=ROOT, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = page.read_text()
    assert f"| command | `deal bench length --limit 2 --max-new-tokens 8 --report {page}` |" in text
    assert "![length](length.png)" in text and page.with_suffix(".png").stat().st_size > 1000
    data = json.loads(page.with_suffix(".json").read_text())
    assert data["date"] and data["environment"]["model"] == "SmolLM2-135M-Instruct"
    assert text == report.page_from_data(page.with_suffix(".json"))
