"""A benchmark's results page, written from its data: `deal bench TASK --report docs/results/TASK.md`.

The page holds the command, the date, the machine, the model, the settings, the data split (development or held
out), the table and the plot; the JSON beside it (`TASK.json`, every answer) is the data it was written from, and
`python -m deal_core.bench.report docs/results/TASK.json` writes the page again from that file alone. Any bench
whose `run` returns its report (a dict) gets a page: nothing in the bench modules is specific to this writer.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# What each split value means; a report's settings name it as `split` or `half`.
SPLITS = {
    "dev": "development rows: settings were chosen on them",
    "test": "held-out rows: never looked at while settings were chosen",
    "tune": "tuning half: settings and rules were chosen on it",
    "held-out": "held-out half: never looked at while settings and rules were chosen",
    "all": "every row, development and held-out alike",
    "easy": "CommonGen development sets of 3 concepts",
    "hard": "CommonGen development sets of 4–5 concepts (where the default settings were chosen: not held out)",
    "hard-dev": "first half of the CommonGen 4–5-concept sets: Keywords' clean rules were checked on it",
    "hard-test": "second half of the CommonGen 4–5-concept sets: held out, never looked at while the rules were chosen",
}
# Where a task's data come from when its report names no split.
TASK_DATA = {
    "demo": "CommonGen development sets (a demonstration, not an evaluation)",
    "commongen": "CommonGen development sets (not held out: the defaults were chosen on this data)",
    "length": "CommonGen development topics (not held out)",
    "tradeoff": "CommonGen development sets (not held out)",
    "serve": "CommonGen development sets as traffic (a speed measurement: answers are compared, not scored)",
    "batch": "CommonGen development sets as rows (a speed measurement)",
    "tools": "BFCL rows shipped with the package (simple + multiple); no setting was chosen on them",
    "tool-need": "held-out half of the tool-need rows (odd rows); the threshold was chosen on the even rows",
}
HEADER = ("<!-- Written by deal_core/bench/report.py from {data}: rerun the command below to refresh it, or "
          "`python -m deal_core.bench.report {data}` to rewrite it from the data. -->\n\n")


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command as a user types it: `deal bench …` (whatever entry point ran it)."""
    args = list(sys.argv[1:] if argv is None else argv)
    return "deal " + " ".join(shlex.quote(a) for a in args)


def stamp(report: dict[str, Any], command: str, date: str | None = None) -> dict[str, Any]:
    """Record the command, the date and the machine in the report (once: a rewrite keeps the run's own)."""
    report.setdefault("command", command)
    report.setdefault("date", date or dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"))
    report.setdefault("machine", {"system": platform.system(), "machine": platform.machine(),
                                  "processor": platform.processor() or "unknown", "python": platform.python_version()})
    return report


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value).replace("|", "\\|")


def summary_table(summary: Mapping[str, Any]) -> str:
    """A table from a summary of {row name: {metric: value}} (the benches that print their own table)."""
    rows = {k: v for k, v in summary.items() if isinstance(v, Mapping)}
    if not rows:
        return "| metric | value |\n|---|---|\n" + "\n".join(f"| {k} | {_fmt(v)} |" for k, v in summary.items())
    columns = list(dict.fromkeys(c for v in rows.values() for c in v if not isinstance(v[c], (Mapping, list))))
    lines = ["| | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    lines += [f"| {name} | " + " | ".join(_fmt(v.get(c, "")) for c in columns) + " |" for name, v in rows.items()]
    return "\n".join(lines)


def _table(report: Mapping[str, Any]) -> str:
    if isinstance(report.get("table"), str) and report["table"].strip():
        return report["table"].strip()
    for key in ("summary", "modes"):
        if isinstance(report.get(key), Mapping):
            return summary_table(report[key])
    return "(this report holds no table)"


def _settings(report: Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(report.get("settings"), Mapping):
        return dict(report["settings"])
    skip = {"summary", "rows", "table", "modes", "environment", "command", "date", "machine", "task", "sets"}
    return {k: v for k, v in report.items() if k not in skip and not isinstance(v, (Mapping, list))}


def split_text(task: str, settings: Mapping[str, Any]) -> str:
    split = settings.get("split", settings.get("half"))
    if isinstance(split, str):
        return f"`{split}`: {SPLITS.get(split, 'as the benchmark defines it')}"
    return TASK_DATA.get(task, "the benchmark's shipped data (see its module docstring)")


def _machine(report: Mapping[str, Any]) -> str:
    env = report.get("environment") if isinstance(report.get("environment"), Mapping) else {}
    machine = report.get("machine") if isinstance(report.get("machine"), Mapping) else {}
    parts = [machine.get("system"), env.get("machine") or machine.get("machine"),
             f"torch threads: {env['cpus']}" if "cpus" in env else None,
             f"Python {env.get('python') or machine.get('python')}" if env.get("python") or machine.get("python")
             else None, f"torch {env['torch']}" if "torch" in env else None,
             f"transformers {env['transformers']}" if "transformers" in env else None]
    return ", ".join(p for p in parts if p) or "not recorded"


def _setting(value: Any, most: int = 160) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return f"`{text}`" if len(text) <= most else f"`{text[:most]}`… (the rest in the JSON)"


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|")


def page(report: Mapping[str, Any], data_name: str, plot_name: str | None = None) -> str:
    """The markdown page of one report (`data_name`: the JSON file beside it; `plot_name`: its plot, if any)."""
    task = str(report.get("task") or Path(data_name).stem)
    env = report.get("environment") if isinstance(report.get("environment"), Mapping) else {}
    model = env.get("model") or report.get("model") or "not recorded"
    settings = _settings(report)
    facts = [("command", f"`{report['command']}`" if report.get("command") else "not recorded"),
             ("date", report.get("date") or "not recorded"), ("machine", _machine(report)),
             ("model", f"{model}" + (f" ({env['device']})" if env.get("device") else "")),
             ("data", split_text(task, settings))]
    lines = [HEADER.format(data=data_name) + f"# Benchmark: {task}\n", "| | |", "|---|---|"]
    lines += [f"| {k} | {_cell(v)} |" for k, v in facts]
    lines += ["", "## Results", "", _table(report), ""]
    if plot_name:
        lines += [f"![{task}]({plot_name})", ""]
    lines += ["## Settings", ""] + [f"- `{k}`: {_setting(v)}" for k, v in settings.items()]
    lines += ["", f"Every answer and the full settings: `{data_name}`.", ""]
    return "\n".join(lines)


def write_page(report: dict[str, Any], page_path: str | Path, data_path: str | Path) -> Path:
    """Write `report` as JSON at `data_path` (stamped, beside the page) and its page at `page_path`."""
    page_path, data_path = Path(page_path), Path(data_path)
    page_path.parent.mkdir(parents=True, exist_ok=True)
    data_path.write_text(json.dumps(report, indent=2, default=str, ensure_ascii=False) + "\n")
    plot = page_path.with_suffix(".png")
    page_path.write_text(page(report, str(data_path), plot.name if plot.is_file() else None))
    return page_path


def page_from_data(data_path: str | Path) -> str:
    """The page a results JSON file holds the data for (what `write_page` wrote beside it)."""
    data_path = Path(data_path)
    plot = data_path.with_suffix(".png")
    return page(json.loads(data_path.read_text()), str(data_path), plot.name if plot.is_file() else None)


def main(argv: list[str]) -> int:
    """`python -m deal_core.bench.report RESULTS.json [--check]`: rewrite (or check) the page beside each file."""
    stale = []
    for name in [a for a in argv if not a.startswith("--")]:
        data = Path(name)
        text, target = page_from_data(data), data.with_suffix(".md")
        if "--check" in argv:
            if not target.is_file() or target.read_text() != text:
                stale.append(str(target))
        else:
            target.write_text(text)
    for target in stale:
        sys.stderr.write(f"{target} differs from its data: run `python -m deal_core.bench.report` on its JSON\n")
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
