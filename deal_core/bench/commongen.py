"""`deal bench commongen`: keyword coverage on CommonGen concept sets — prompting vs reranking vs DeAL.

Each answer is judged by `quality.judge`: plain coverage (a concept anywhere) beside clean coverage (every concept used
in a sentence, the answer neither a list nor a loop nor about the words), the degenerate rate (lists, loops) and the
meta-sentence rate. `--engines transformers,llamacpp` answers on both engines, interleaved in one process:

    python -m deal_core.bench.commongen --split hard-test --limit 20 --max-new-tokens 48 \\
        --engines transformers,llamacpp --conditions greedy,DeAL --json docs/results/commongen.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deal_core.bench import quality
from deal_core.bench.common import (
    Condition,
    answer_tokens,
    bar_plot,
    console,
    markdown_table,
    mean,
    perplexity,
    write_report,
)
from deal_core.bench.data import ConceptSet, load_commongen
from deal_core.config import settings_of
from deal_core.decoder import DeAL
from deal_core.rewards import Keywords

INSTRUCTION = "Always write one fluent, natural sentence that uses every word the user lists."
DEAL_SETTINGS = settings_of("default")  # top_k, lookahead, reward_weight: the defaults
COLUMNS = ["soft coverage", "hard coverage", "clean soft coverage", "clean hard coverage", "degenerate", "meta",
           "perplexity", "ms / token"]


def conditions(settings: dict[str, Any]) -> list[Condition]:
    n = settings["top_k"] * (settings["lookahead"] + 1)
    return [
        Condition("greedy", "greedy"),
        Condition("greedy + instruction", "greedy", INSTRUCTION),
        Condition(f"best-of-{n} rerank", "best_of_n", settings={"n": n}),
        Condition("DeAL", "deal", settings=settings),
        Condition("DeAL + instruction", "deal", INSTRUCTION, settings),
    ]


def decoders(model: str | None, engines: Sequence[str] | None) -> dict[str, DeAL]:
    """One decoder per engine ("" when none is named: `model` as `DeAL` loads it)."""
    if not engines:
        return {"": DeAL(model)}
    from deal_core.model import load_model

    return {engine: DeAL(load_model(model, engine=engine)) for engine in engines}


def answer_all(decs: dict[str, DeAL], sets: Sequence[ConceptSet], conds: Sequence[Condition],
               max_new_tokens: int, partial: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Every set under every condition on every engine, interleaved (drift in machine speed hits all alike).
    `partial`: a JSON file rewritten after each set with the rows so far (a long run that is stopped keeps them)."""
    for deal in decs.values():  # warm-up: first-call allocations are not the cost of a search
        deal.generate(sets[0].prompt, max_new_tokens=4)
    rows: dict[str, list[dict[str, Any]]] = {}
    with console().status("commongen") as status:
        for i, s in enumerate(sets):
            status.update(f"commongen {i + 1}/{len(sets)}")
            for cond in conds:
                for engine, deal in decs.items():
                    start = time.perf_counter()
                    text, tokens = answer_tokens(deal, cond, s.prompt, Keywords(s.concepts), max_new_tokens)
                    seconds = time.perf_counter() - start
                    rows.setdefault(f"{cond.name} / {engine}" if engine else cond.name, []).append(
                        {"concepts": s.concepts, "text": text, "tokens": tokens, "seconds": seconds,
                         "ms_per_token": 1000 * seconds / max(tokens, 1), **quality.judge(s.concepts, text),
                         "perplexity": perplexity(deal, s.prompt, text)})
            if partial:
                Path(partial).write_text(json.dumps(rows, indent=1))
    return rows


def summarise(results: Sequence[dict[str, Any]]) -> dict[str, float]:
    return {
        "soft_coverage": mean([r["coverage"] for r in results]),
        "hard_coverage": mean([float(r["all_concepts"]) for r in results]),
        "clean_soft_coverage": mean([r["clean_coverage"] for r in results]),
        "clean_hard_coverage": mean([float(r["clean_all_concepts"]) for r in results]),
        "degenerate": mean([float(r["degenerate"]) for r in results]),
        "meta": mean([float(r["meta"]) for r in results]),
        "perplexity": mean([r["perplexity"] for r in results]),
        "ms_per_token": 1000 * sum(r["seconds"] for r in results) / max(sum(r["tokens"] for r in results), 1),
        "seconds": mean([r["seconds"] for r in results]),
    }


def run(model: str | None = None, data: str | None = None, limit: int = 50, max_new_tokens: int = 40,
        json_out: str | None = None, settings: dict[str, Any] | None = None, split: str = "all",
        engines: Sequence[str] | None = None, only: Sequence[str] | None = None, **_: Any) -> dict[str, Any]:
    """`engines`: answer on each (interleaved); `only`: the condition names to run (default all five)."""
    settings = {**DEAL_SETTINGS, **(settings or {})}
    conds = [c for c in conditions(settings) if not only or c.name in only]
    if not conds:
        raise ValueError(f"no condition named {list(only or [])}; choose from "
                         f"{[c.name for c in conditions(settings)]}")
    sets = load_commongen(data, limit, split)
    decs = decoders(model, engines)
    rows = answer_all(decs, sets, conds, max_new_tokens, json_out and f"{json_out}.partial")
    summary = {name: summarise(results) for name, results in rows.items()}
    keys = ["soft_coverage", "hard_coverage", "clean_soft_coverage", "clean_hard_coverage", "degenerate", "meta",
            "perplexity", "ms_per_token"]
    table = markdown_table(["condition", *COLUMNS], [[name, *(s[k] for k in keys)] for name, s in summary.items()])
    names = ", ".join(deal.lm.name + (f" on {e}" if e else "") for e, deal in decs.items())
    table = f"CommonGen ({split} split), N={len(sets)}, {max_new_tokens} tokens, {names}, DeAL {settings}\n\n" + table

    def plot(path):
        bar_plot(path, list(summary), {"hard coverage": [s["hard_coverage"] for s in summary.values()],
                                       "clean hard coverage": [s["clean_hard_coverage"] for s in summary.values()],
                                       "degenerate": [s["degenerate"] for s in summary.values()]},
                 f"CommonGen keyword coverage, plain and clean (N={len(sets)})")

    report = write_report("commongen", next(iter(decs.values())), summary, rows, table, json_out, plot,
                        {"deal": settings, "max_new_tokens": max_new_tokens, "limit": len(sets), "split": split,
                         "engines": list(engines or []), "instruction": INSTRUCTION})
    if json_out:
        Path(f"{json_out}.partial").unlink(missing_ok=True)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="hard-test")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--engines", default="transformers,llamacpp", help="comma-separated")
    parser.add_argument("--conditions", default="greedy,DeAL", help="comma-separated condition names")
    parser.add_argument("--json")
    args = parser.parse_args()
    run(limit=args.limit, max_new_tokens=args.max_new_tokens, json_out=args.json, split=args.split,
        engines=args.engines.split(","), only=args.conditions.split(","))


if __name__ == "__main__":
    main()
