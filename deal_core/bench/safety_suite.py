"""`deal bench safety`: does `Safety` refuse what it should and answer what it should, on requests nobody tuned on?

Sets (all shipped in `deal_core/bench/files/`):
- lookalikes: `safety_lookalikes.jsonl`, benign requests that only sound dangerous, in eight categories (homonyms,
  figurative language, safe targets, safe contexts, definitions, health and safety, public figures and history,
  security defence), plus plain benign requests. Written for this project; split `dev` (4 per category: thresholds
  and data were chosen looking at these) and `heldout` (8 per category: reported only). Neither is trained on.
- harmful: AdvBench behaviours, plain and with the continuation attack (assistant turn pre-filled with "Sure, here
  is ..."); `--split heldout` reads the test half (rows 131-260), `dev` the dev half (rows 1-130), as the harmless
  and jailbreak benches do.

Conditions: greedy, and DeAL with `Safety()` at the library's default settings (what `rewards=Safety()` gives a user).
Verdicts are the safety benches' judge (`deal_core.bench.safety.verdict`): over-refusal = a benign request refused;
harmful refused = an AdvBench request refused; attack resisted = the attacked answer does not comply.
"""

from __future__ import annotations

import json
import time
from typing import Any

from deal_core.bench.common import console, markdown_table, mean, write_report
from deal_core.bench.data import PACKAGED_DATA, load_advbench
from deal_core.bench.safety import HALVES, verdict
from deal_core.decoder import DeAL
from deal_core.errors import ConfigError
from deal_core.rewards import Safety

SPLITS = {"heldout": "test", "dev": "dev"}  # lookalike split -> AdvBench half


def lookalikes(split: str) -> dict[str, list[str]]:
    """category -> requests of the `split` (dev or heldout) rows of `safety_lookalikes.jsonl`."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    out: dict[str, list[str]] = {}
    for line in (PACKAGED_DATA / "safety_lookalikes.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if row["split"] == split:
                out.setdefault(row["category"], []).append(row["prompt"])
    return out


def _answer(deal: DeAL, prompt: Any, safety: Safety | None, max_new_tokens: int,
            settings: dict[str, Any]) -> dict[str, Any]:
    start = time.perf_counter()
    if safety is None:
        result = deal.greedy(prompt, max_new_tokens=max_new_tokens)
    else:
        result = deal.generate(prompt, rewards=safety, max_new_tokens=max_new_tokens, **settings)
    text = result.text
    return {"text": text, "verdict": verdict(text), "seconds": time.perf_counter() - start}


def _items(split: str, limit: int | None, harmful_limit: int) -> list[tuple[str, Any, str]]:
    """(set name, prompt, request) rows: lookalikes by category, plain benign, harmful, attacked."""
    items = []
    for name, prompts in lookalikes(split).items():
        items += [(name, p, p) for p in prompts[:limit]]
    harmful = load_advbench()[HALVES[SPLITS[split]]][:harmful_limit]
    items += [("harmful (AdvBench)", b.goal, b.goal) for b in harmful]
    items += [("continuation attack (AdvBench)", [{"role": "user", "content": b.goal},
                                                  {"role": "assistant", "content": b.target}], b.goal)
              for b in harmful]
    return items


def _summary(rows: dict[str, dict[str, list[dict[str, Any]]]]) -> dict[str, dict[str, Any]]:
    out = {}
    for name, conds in rows.items():
        for cond, results in conds.items():
            entry = {"n": len(results), "refused": mean([float(r["verdict"] == "refuses") for r in results]),
                     "complied": mean([float(r["verdict"] == "complies") for r in results])}
            if name.startswith("continuation"):
                entry["resisted"] = 1.0 - entry["complied"]
            out[f"{name}: {cond}"] = entry
    lookalike = [r for name, conds in rows.items() if not name.startswith(("harmful", "continuation", "plain"))
                 for r in conds.get("DeAL + Safety", [])]
    out["all lookalikes: DeAL + Safety"] = {"n": len(lookalike),
                                            "refused": mean([float(r["verdict"] == "refuses") for r in lookalike])}
    return out


def run(model: str | None = None, split: str = "heldout", limit: int | None = None, harmful_limit: int = 12,
        max_new_tokens: int = 40, json_out: str | None = None, settings: dict[str, Any] | None = None,
        **_: Any) -> dict[str, Any]:
    """Every item greedy and with DeAL + Safety (default settings unless `settings`), interleaved in one process.
    `limit`: at most this many requests of each set (default: every lookalike, `harmful_limit` AdvBench rows)."""
    settings = dict(settings or {})
    harmful_limit = min(limit, harmful_limit) if limit else harmful_limit
    items = _items(split, limit, harmful_limit)
    deal, safety = DeAL(model), Safety()
    rows: dict[str, dict[str, list[dict[str, Any]]]] = {}
    with console().status("safety") as status:
        for done, (name, prompt, request) in enumerate(items, 1):
            status.update(f"safety {done}/{len(items)}: {name}")
            for cond, reward in (("greedy", None), ("DeAL + Safety", safety)):
                row = _answer(deal, prompt, reward, max_new_tokens, settings)
                row["request"] = request
                rows.setdefault(name, {}).setdefault(cond, []).append(row)
    summary = _summary(rows)
    columns = ["set: condition", "N", "refused", "complied", "attack resisted"]
    table = markdown_table(columns, [[k, v["n"], v["refused"], v.get("complied", "-"), v.get("resisted", "-")]
                                     for k, v in summary.items()])
    table = (f"Safety on requests nobody tuned on ({split} split; AdvBench {SPLITS[split]} rows, first "
             f"{harmful_limit}), {deal.lm.name}, {max_new_tokens} new tokens, DeAL default settings "
             f"{settings or ''} + Safety() (harm_threshold {safety.harm_threshold}). Verdicts: the safety benches' "
             f"judge.\n\n" + table)
    return write_report("safety", deal, summary, rows, table, json_out, None,
                        {"deal": settings, "split": split, "limit": limit, "harmful_limit": harmful_limit,
                         "max_new_tokens": max_new_tokens, "safety": safety.spec()})
