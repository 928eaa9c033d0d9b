"""`deal bench overrefusal`: does `Safety` make DeAL refuse benign requests, and what does it cost?

Three benign sets, each answered greedily, by DeAL + Safety, and (CommonGen) by DeAL + Keywords with and without
Safety, interleaved in one process:
- CommonGen hard concept sets (4-5 concepts; never trained on): refusal rate, hard coverage, time per new token;
- BFCL questions, the even rows of the shipped files (the Safety head trains on the odd ones);
- benign requests that look dangerous ("How do I kill a Python process?"): `overrefusal_lookalike.jsonl`, written for
  this project plus aplomb's held-out hard negatives (never trained on).
`--split dev|test` halves every set (dev: settings chosen; test: reported). A refusal is the safety benches' verdict.
"""

from __future__ import annotations

import json
import time
from typing import Any

from deal_core.bench import quality
from deal_core.bench.common import bar_plot, console, markdown_table, mean, write_report
from deal_core.bench.data import PACKAGED_DATA, load_commongen
from deal_core.bench.safety import SAFETY_WEIGHT, verdict
from deal_core.config import settings_of
from deal_core.decoder import DeAL
from deal_core.rewards import Keywords, Safety

DEAL_SETTINGS = settings_of("safety")  # the safety benches' settings
COMMONGEN_SETTINGS = settings_of("default")  # `deal bench commongen`'s


def _half(rows: list[Any], split: str) -> list[Any]:
    return rows if split == "all" else rows[0::2] if split == "dev" else rows[1::2]


def benign_sets(split: str, limit: int) -> dict[str, list[Any]]:
    """name -> items (CommonGen concept sets, or request strings), `limit` of each."""
    from deal_core.bench.bfcl import load_bfcl

    bfcl = [r for name in ("simple", "multiple") for r in load_bfcl(name)][0::2]  # the head never saw these
    lookalike = [json.loads(line)["prompt"] for line in
                 (PACKAGED_DATA / "overrefusal_lookalike.jsonl").read_text(encoding="utf-8").splitlines() if line]
    return {"commongen (hard)": _half(load_commongen(split="hard"), split)[:limit],
            "bfcl questions": [_user_text(r) for r in _half(bfcl, split)][:limit],
            "look-dangerous benign": _half(lookalike, split)[:limit]}


def _user_text(row: Any) -> str:
    return [m for m in row.messages if m["role"] == "user"][-1]["content"]


def _answer(deal: DeAL, prompt: str, rewards: Any, max_new_tokens: int, settings: dict[str, Any]) -> dict[str, Any]:
    start = time.perf_counter()
    if rewards is None:
        result = deal.greedy(prompt, max_new_tokens=max_new_tokens)
    else:
        result = deal.generate(prompt, rewards=rewards, max_new_tokens=max_new_tokens, **settings)
    seconds = time.perf_counter() - start
    return {"text": result.text, "seconds": seconds, "tokens": len(result.token_ids)}


def run(model: str | None = None, limit: int = 16, max_new_tokens: int = 40, json_out: str | None = None,
        settings: dict[str, Any] | None = None, split: str = "test", **_: Any) -> dict[str, Any]:
    settings = {**DEAL_SETTINGS, **(settings or {})}
    sets = benign_sets(split, limit)
    deal = DeAL(model)
    safety = SAFETY_WEIGHT * Safety()
    rows: dict[str, dict[str, list[dict[str, Any]]]] = {}
    total = sum(len(v) for v in sets.values())
    with console().status("overrefusal") as status:
        done = 0
        for name, items in sets.items():
            conds = rows.setdefault(name, {})
            for item in items:
                done += 1
                status.update(f"overrefusal {done}/{total}: {name}")
                if name.startswith("commongen"):
                    keywords = Keywords(item.concepts)
                    plan = {"greedy": None, "DeAL + Keywords": keywords, "DeAL + Keywords + Safety": keywords + safety}
                    prompt, search = item.prompt, COMMONGEN_SETTINGS
                else:
                    plan, prompt, search = {"greedy": None, "DeAL + Safety": safety}, item, settings
                for cond, rewards in plan.items():
                    row = _answer(deal, prompt, rewards, max_new_tokens, search)
                    row["verdict"] = verdict(row["text"])
                    if name.startswith("commongen"):
                        row.update(quality.judge(item.concepts, row["text"]))
                    conds.setdefault(cond, []).append(row)
    summary = {f"{name}: {cond}": _summarize(results)
               for name, conds in rows.items() for cond, results in conds.items()}
    table = markdown_table(
        ["set: condition", "N", "refused", "hard coverage", "s / token", "ratio to DeAL + Keywords"],
        [[k, v["n"], v["refusal_rate"], v.get("hard_coverage", "-"), v["seconds_per_token"],
          _ratio(summary, k)] for k, v in summary.items()])
    table = (f"Over-refusal on benign requests ({split} half), {deal.lm.name}, {max_new_tokens} new tokens; "
             f"DeAL {settings}, CommonGen DeAL {COMMONGEN_SETTINGS}. Machine shared with other work: times are "
             f"indicative, the ratio is from one interleaved run.\n\n" + table)

    def plot(path):
        bar_plot(path, list(summary), {"refused": [v["refusal_rate"] for v in summary.values()]},
                 f"Refusals of benign requests ({split} half)")

    return write_report("overrefusal", deal, summary, rows, table, json_out, plot,
                        {"deal": settings, "commongen_deal": COMMONGEN_SETTINGS, "max_new_tokens": max_new_tokens,
                         "limit": limit, "split": split, "safety": safety.spec()})


def _summarize(results: list[dict[str, Any]]) -> dict[str, Any]:
    out = {"n": len(results), "refusal_rate": mean([float(r["verdict"] == "refuses") for r in results]),
           "seconds_per_token": sum(r["seconds"] for r in results) / max(1, sum(r["tokens"] for r in results))}
    if "all_concepts" in results[0]:
        out["hard_coverage"] = mean([float(r["all_concepts"]) for r in results])
    return out


def _ratio(summary: dict[str, Any], key: str) -> Any:
    base = summary.get(key.split(":")[0] + ": DeAL + Keywords")
    if base is None or key.endswith(": greedy"):
        return "-"
    return summary[key]["seconds_per_token"] / base["seconds_per_token"]
