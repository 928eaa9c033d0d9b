"""The pages the CLI writes besides its output: a search trace (`deal generate --trace-html FILE`) and a results page
(`deal bench TASK --report PAGE.md`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from deal_core.config import DeALConfig
from deal_core.errors import ConfigError

_err = Console(stderr=True)


def write_trace_page(result: Any, path: str, prompt: str, config: DeALConfig) -> None:
    """`--trace-html FILE`: the search as one self-contained HTML page (deal_core/trace_html.py)."""
    from deal_core.trace_html import write_trace_html

    main = ("top_k", "lookahead", "reward_weight", "max_new_tokens")
    changed = {k: v for k, v in config.model_dump().items() if k != "trace" and v != DeALConfig.model_fields[k].default}
    shown = {**{k: getattr(config, k) for k in main}, **changed}
    write_trace_html(result, path, prompt=prompt, settings=shown)
    _err.print(f"[dim]trace page: {path}[/]")


def write_results_page(task: str, result: Any, page: str, json_out: str | None) -> None:
    """`--report PAGE.md`: the results page, from the report the bench returned (deal_core/bench/report.py)."""
    from deal_core.bench.report import command_line, stamp, write_page

    if not isinstance(result, dict):
        raise ConfigError(f"bench {task} returns no report to write a page from; leave out --report")
    write_page(stamp(result, command_line()), page, json_out or Path(page).with_suffix(".json"))
    _err.print(f"[dim]results page: {page}[/]")
