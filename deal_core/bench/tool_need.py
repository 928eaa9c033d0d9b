"""`deal bench tool-need`: with `tool_choice="auto"`, is a call made when a bound tool answers the request, and not
when none fits?

Requests that need a tool: BFCL `simple` and `multiple` questions with their functions bound. Requests no tool fits:
small talk (`files/chitchat.jsonl`, written for this project) and CommonGen prompts ("Write a sentence using the
words: ..."), each with the tools of a BFCL row bound (row i's tools for negative i). Every list is split in halves by
position (even rows tune, odd rows are held out). Part 1 (`ToolNeed` alone, every row): the threshold is chosen on
the tuning half (the largest call rate on BFCL minus call rate on the rest) and reported on both halves. Part 2
(`--limit N` held-out rows of each kind through `DeAL.generate`): the whole decision and the calls made, `"auto"`
against forced `"required"`, with BFCL's AST rule.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from deal_core.bench.bfcl import check_calls, load_bfcl, tools_of
from deal_core.bench.common import console, markdown_table, write_report
from deal_core.bench.data import data_path, load_commongen
from deal_core.decoder import DeAL
from deal_core.request import Request, Tool
from deal_core.rewards import ToolArguments
from deal_core.rewards.tool_need import ToolNeed, similarities


@dataclass(frozen=True)
class Case:
    kind: str  # "bfcl", "chitchat", "commongen"
    prompt: str
    tools: tuple[Tool, ...]
    row: Any = None  # the BFCL row, for the AST check


def cases(data: str | None = None) -> list[Case]:
    rows = load_bfcl("simple", None, None) + load_bfcl("multiple", None, None)
    out = [Case("bfcl", r.messages[-1]["content"], tuple(tools_of(r)), r) for r in rows]
    with open(data_path(data, "chitchat.jsonl"), encoding="utf-8") as fh:
        chat = [json.loads(line)["prompt"] for line in fh if line.strip()]
    out += [Case("chitchat", p, tuple(tools_of(rows[(7 * i) % len(rows)]))) for i, p in enumerate(chat)]
    concept_sets = load_commongen(limit=100)
    out += [Case("commongen", s.prompt, tuple(tools_of(rows[(11 * i + 3) % len(rows)])))
            for i, s in enumerate(concept_sets)]
    return out


def halves(items: list[Case]) -> tuple[list[Case], list[Case]]:
    """Tuning half (even positions within each kind) and held-out half (odd positions)."""
    tune, held = [], []
    for kind in ("bfcl", "chitchat", "commongen"):
        group = [c for c in items if c.kind == kind]
        tune += group[0::2]
        held += group[1::2]
    return tune, held


def call_rates(scores: list[tuple[Case, float]], threshold: float) -> dict[str, float]:
    out = {}
    for kind in ("bfcl", "chitchat", "commongen"):
        chosen = [s >= threshold for c, s in scores if c.kind == kind]
        out[kind] = sum(chosen) / max(len(chosen), 1)
    return out


def choose_threshold(scores: list[tuple[Case, float]]) -> float:
    """The threshold with the largest BFCL call rate minus the worst call rate where no tool fits."""
    def margin(t: float) -> float:
        rates = call_rates(scores, t)
        return rates["bfcl"] - max(rates["chitchat"], rates["commongen"])

    grid = [round(0.05 + 0.01 * i, 2) for i in range(50)]
    return max(grid, key=lambda t: (margin(t), -abs(t - 0.2)))


def _decoded(deal: DeAL, case: Case, choice: str, max_new_tokens: int) -> dict[str, Any]:
    request = Request.of(case.prompt, tools=list(case.tools), tool_choice=choice, parallel_tool_calls=False,
                         max_new_tokens=max_new_tokens)
    try:
        result = deal.generate(request, rewards=[ToolArguments()])
    except Exception as exc:  # noqa: BLE001 - a failed row is reported with its reason
        return {"called": False, "args": False, "text": f"error: {exc}"}
    calls = [(c.name, c.arguments) for c in result.tool_calls]
    check = check_calls(calls, case.row) if case.row is not None and calls else None
    return {"called": bool(calls), "args": bool(check and check.args_match), "text": result.raw_text or result.text,
            "finish_reason": result.finish_reason}


def decoded_part(deal: DeAL, held: list[Case], limit: int, max_new_tokens: int) -> tuple[dict, list]:
    chosen = [c for kind in ("bfcl", "chitchat", "commongen") for c in [c for c in held if c.kind == kind][:limit]]
    out, rows = console(), []
    for i, case in enumerate(chosen, 1):
        row = {"kind": case.kind, "prompt": case.prompt, "auto": _decoded(deal, case, "auto", max_new_tokens)}
        if case.kind == "bfcl":
            row["required"] = _decoded(deal, case, "required", max_new_tokens)
        rows.append(row)
        out.print(f"[{i}/{len(chosen)}] {case.kind}: auto called={row['auto']['called']}", highlight=False)
    summary = {}
    for kind in ("bfcl", "chitchat", "commongen"):
        mine = [r for r in rows if r["kind"] == kind]
        summary[f"auto_call_rate_{kind}"] = sum(r["auto"]["called"] for r in mine) / max(len(mine), 1)
    bfcl = [r for r in rows if r["kind"] == "bfcl"]
    summary["args_match_auto"] = sum(r["auto"]["args"] for r in bfcl) / max(len(bfcl), 1)
    summary["args_match_required"] = sum(r["required"]["args"] for r in bfcl) / max(len(bfcl), 1)
    return summary, rows


def run(model: str | None = None, data: str | None = None, limit: int = 0, max_new_tokens: int = 96,
        json_out: str | None = None, **_: Any) -> dict[str, Any]:
    deal = DeAL(model)
    items = cases(data)
    scores = [(c, max(similarities(c.prompt, c.tools))) for c in items]
    tune, held = halves(items)
    by_case = {id(c): s for c, s in scores}
    tune_scores = [(c, by_case[id(c)]) for c in tune]
    held_scores = [(c, by_case[id(c)]) for c in held]
    threshold = choose_threshold(tune_scores)
    summary: dict[str, Any] = {"threshold_chosen": threshold, "shipped_threshold": ToolNeed().threshold}
    table_rows = []
    for name, part in (("tuning half", tune_scores), ("held-out half", held_scores)):
        for label, t in (("chosen", threshold), ("shipped", ToolNeed().threshold)):
            rates = call_rates(part, t)
            summary[f"{name} {label}"] = rates
            table_rows.append([name, f"{t:.2f} ({label})", f"{len([c for c, _ in part if c.kind == 'bfcl'])}",
                               *(f"{100 * rates[k]:.0f}%" for k in ("bfcl", "chitchat", "commongen"))])
    table = ("ToolNeed call decision with tool_choice='auto' (all-MiniLM-L6-v2 similarity, request vs tool words)\n\n"
             + markdown_table(["rows", "threshold", "BFCL rows", "calls: BFCL", "calls: small talk",
                               "calls: CommonGen"], table_rows))
    rows: list[Any] = []
    if limit:
        decoded, rows = decoded_part(deal, held, limit, max_new_tokens)
        summary["decoded_held_out"] = decoded
        table += f"\n\nDecoded (held-out, first {limit} of each kind, {deal.lm.name}, max_new_tokens={max_new_tokens}):\n\n" + markdown_table(
            ["measure", "value"], [[k, f"{100 * v:.0f}%"] for k, v in decoded.items()])
    return write_report("tool-need", deal, summary, rows, table, json_out, None,
                        {"limit": limit, "max_new_tokens": max_new_tokens})
