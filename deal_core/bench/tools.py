"""`deal bench tools`: function calling on Berkeley Function Calling Leaderboard rows (simple and multiple), plain
greedy with the tools in the prompt against DeAL with the call format enforced, in one run.

Each answer is read back as calls (`<tool_call>{...}</tool_call>`; for plain greedy a call that does not parse is
an invalid format) and checked with BFCL's AST rule (`deal_core.bench.bfcl.check_calls`): valid format, right
function, arguments matching the ground truth.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from deal_core.bench.bfcl import SPLITS, BfclRow, check_calls, load_bfcl, tools_of
from deal_core.bench.common import bar_plot, console, markdown_table, write_report
from deal_core.constraint import CALL_CLOSE, CALL_OPEN
from deal_core.decoder import DeAL
from deal_core.prompts import encode_prompt
from deal_core.request import Request
from deal_core.rewards import ToolArguments

_CALL = re.compile(re.escape(CALL_OPEN) + r"(.*?)(?:" + re.escape(CALL_CLOSE) + r"|$)", re.S)


@dataclass(frozen=True)
class Mode:
    name: str
    constrained: bool
    settings: dict[str, Any]
    rewards: tuple = ()


def modes(settings: dict[str, Any]) -> list[Mode]:
    return [
        Mode("greedy, tools in prompt", False, {}),
        Mode("greedy + format constraint", True, {"top_k": 1, "reward_weight": 0.0}),
        Mode("DeAL + constraint", True, {**settings}),
        Mode("DeAL + constraint + ToolArguments", True, {**settings}, (ToolArguments(),)),
    ]


def parse_free_text(text: str) -> list[tuple[str, dict[str, Any]]] | None:
    """Calls in an unconstrained answer; None when there is none or one does not parse (an invalid format)."""
    bodies = _CALL.findall(text)
    if not bodies:
        return None
    calls = []
    for body in bodies:
        try:
            data = json.loads(body.strip())
            calls.append((data["name"], data["arguments"]))
        except (ValueError, KeyError, TypeError):
            return None
    return calls


def _request(row: BfclRow, max_new_tokens: int, constrained: bool) -> Request:
    return Request.of(list(row.messages), tools=tools_of(row), tool_choice="required" if constrained else "auto",
                      parallel_tool_calls=False, max_new_tokens=max_new_tokens)


def _answer(deal: DeAL, row: BfclRow, mode: Mode, max_new_tokens: int) -> tuple[Any, int, float, str]:
    start = time.perf_counter()
    if not mode.constrained:  # the tools rendered into the prompt exactly as for DeAL, then transformers' greedy
        ids = encode_prompt(deal.lm, _request(row, max_new_tokens, False)).ids
        out = deal.lm.generate(ids, max_new_tokens=max_new_tokens)[0]
        text = deal.lm.decode(out.tokens)
        return parse_free_text(text), len(out.tokens), time.perf_counter() - start, text
    try:
        result = deal.generate(_request(row, max_new_tokens, True), rewards=list(mode.rewards) or None,
                               **mode.settings)
    except Exception as exc:  # noqa: BLE001 - a failed row is an invalid answer, reported with its reason
        return None, 0, time.perf_counter() - start, f"error: {exc}"
    calls = [(c.name, c.arguments) for c in result.tool_calls]
    return calls, len(result.token_ids), time.perf_counter() - start, result.raw_text or result.text


HALF_START = {"all": (0, 1), "dev": (0, 2), "test": (1, 2)}  # (first position, step) of each file's rows


def bfcl_rows(data: str | None, limit: int, half: str = "all") -> list[BfclRow]:
    """`limit` rows of each split: the shipped files; from `data`, a folder holding files of the shipped names, or
    one file whose rows go to the split their id names ("simple_…", "multiple_…"; others count as simple).
    `half`: "dev" keeps the rows at even positions of each split, "test" those at odd positions (held out, as in
    `deal bench tool-need`, whose threshold was chosen on the even rows), "all" every row."""
    start, step = HALF_START[half]
    if data is None or Path(data).is_dir():
        folder = None if data is None else Path(data)
        return [r for split in SPLITS for r in load_bfcl(split, None, None if folder is None else folder / SPLITS[split])
                [start::step][:limit]]
    rows = load_bfcl("simple", None, data)
    by_split = {s: [replace(r, split="multiple" if r.id.startswith("multiple") else "simple") for r in rows
                    if r.id.startswith("multiple") == (s == "multiple")] for s in SPLITS}
    return [r for split in SPLITS for r in by_split[split][start::step][:limit]]


def run(model: str | None = None, data: str | None = None, limit: int = 30, max_new_tokens: int = 96,
        json_out: str | None = None, settings: dict | None = None, split: str = "all", **_: Any) -> dict[str, Any]:
    deal = DeAL(model)
    rows = bfcl_rows(data, limit, split)
    chosen = modes(settings or {})
    out = console()
    results: dict[str, list[dict[str, Any]]] = {m.name: [] for m in chosen}
    for i, row in enumerate(rows, 1):
        for mode in chosen:
            calls, tokens, seconds, text = _answer(deal, row, mode, max_new_tokens)
            check = check_calls(calls, row)
            results[mode.name].append({"id": row.id, "valid": check.valid_format, "function": check.right_function,
                                       "args": check.args_match, "reason": check.reason, "tokens": tokens,
                                       "seconds": seconds, "text": text})
        out.print(f"[{i}/{len(rows)}] {row.id}: " + ", ".join(
            f"{m.name.split(',')[0].split(' +')[0]}{'+' * m.constrained}{len(m.rewards) and 'R' or ''}="
            f"{'ok' if results[m.name][-1]['args'] else '-'}" for m in chosen), highlight=False)

    summary: dict[str, Any] = {}
    table_rows = []
    for mode in chosen:
        done = results[mode.name]
        split_rate = {split: _rate([d for d, r in zip(done, rows) if r.split == split], "args")
                      for split in ("simple", "multiple")}
        seconds = sum(d["seconds"] for d in done)
        tokens = sum(d["tokens"] for d in done)
        summary[mode.name] = {"valid_format": _rate(done, "valid"), "right_function": _rate(done, "function"),
                              "args_match": _rate(done, "args"), **{f"args_match_{k}": v for k, v in split_rate.items()},
                              "seconds_per_row": seconds / len(done), "ms_per_token": 1000 * seconds / max(tokens, 1)}
        s = summary[mode.name]
        table_rows.append([mode.name, f"{100 * s['valid_format']:.0f}%", f"{100 * s['right_function']:.0f}%",
                           f"{100 * s['args_match']:.0f}%", f"{100 * split_rate['simple']:.0f}%",
                           f"{100 * split_rate['multiple']:.0f}%", f"{s['seconds_per_row']:.2f}"])
    table = (f"BFCL function calling ({split} rows): {len(rows)} rows (up to {limit} simple + {limit} multiple), "
             f"{deal.lm.name}, "
             f"max_new_tokens={max_new_tokens}\n\n" + markdown_table(
                 ["mode", "valid format", "right function", "arguments match (AST)", "simple", "multiple",
                  "s / row"], table_rows))

    def plot(path: Any) -> None:
        labels = [m.name for m in chosen]
        bar_plot(path, labels, {key: [100 * summary[m.name][key] for m in chosen]
                                for key in ("valid_format", "right_function", "args_match")},
                 f"BFCL simple + multiple ({len(rows)} rows), {deal.lm.name}: % of rows")

    return write_report("tools", deal, summary, results, table, json_out, plot,
                        {"limit": limit, "max_new_tokens": max_new_tokens, "deal": settings or {}, "split": split})


def _rate(done: list[dict[str, Any]], key: str) -> float:
    return sum(bool(d[key]) for d in done) / len(done) if done else 0.0
