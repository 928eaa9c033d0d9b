"""`deal bench commongen`: keyword coverage on CommonGen concept sets — prompting vs reranking vs DeAL."""

from __future__ import annotations

from typing import Any

from deal_core.bench import quality
from deal_core.bench.common import (
    Condition,
    bar_plot,
    markdown_table,
    mean,
    perplexity,
    run_conditions,
    write_report,
)
from deal_core.bench.data import load_commongen
from deal_core.decoder import DeAL
from deal_core.rewards import Keywords

INSTRUCTION = "Always write one fluent, natural sentence that uses every word the user lists."
DEAL_SETTINGS = dict(top_k=10, lookahead=8, reward_weight=3.0)  # the defaults


def conditions(settings: dict[str, Any]) -> list[Condition]:
    n = settings["top_k"] * (settings["lookahead"] + 1)
    return [
        Condition("greedy", "greedy"),
        Condition("greedy + instruction", "greedy", INSTRUCTION),
        Condition(f"best-of-{n} rerank", "best_of_n", settings={"n": n}),
        Condition("DeAL", "deal", settings=settings),
        Condition("DeAL + instruction", "deal", INSTRUCTION, settings),
    ]


def run(model: str | None = None, data: str | None = None, limit: int = 50, max_new_tokens: int = 40,
        json_out: str | None = None, settings: dict[str, Any] | None = None, split: str = "all",
        **_: Any) -> dict[str, Any]:
    settings = {**DEAL_SETTINGS, **(settings or {})}
    sets = load_commongen(data, limit, split)
    deal = DeAL(model)
    conds = conditions(settings)
    rows = run_conditions(deal, sets, conds, lambda s: s.prompt, lambda s: Keywords(s.concepts), max_new_tokens,
                          "commongen")
    summary = {}
    for cond in conds:
        results = rows[cond.name]
        for s, r in zip(sets, results):
            r.update(quality.judge(s.concepts, r["text"]))
            r["perplexity"] = perplexity(deal, s.prompt, r["text"])
        summary[cond.name] = {
            "soft_coverage": mean([r["coverage"] for r in results]),
            "hard_coverage": mean([float(r["all_concepts"]) for r in results]),
            "clean_hard_coverage": mean([float(r["clean_all_concepts"]) for r in results]),
            "degenerate": mean([float(r["degenerate"]) for r in results]),
            "perplexity": mean([r["perplexity"] for r in results]),
            "seconds": mean([r["seconds"] for r in results]),
        }
    table = markdown_table(
        ["condition", "soft coverage", "hard coverage", "clean hard coverage", "degenerate", "perplexity",
         "s / prompt"],
        [[name, s["soft_coverage"], s["hard_coverage"], s["clean_hard_coverage"], s["degenerate"], s["perplexity"],
          s["seconds"]] for name, s in summary.items()])
    table = f"CommonGen ({split} split), N={len(sets)}, {deal.lm.name}, DeAL {settings}\n\n" + table

    def plot(path):
        bar_plot(path, list(summary), {"soft coverage": [s["soft_coverage"] for s in summary.values()],
                                       "hard coverage": [s["hard_coverage"] for s in summary.values()],
                                       "clean hard coverage": [s["clean_hard_coverage"] for s in summary.values()]},
                 f"CommonGen keyword coverage (N={len(sets)})")

    return write_report("commongen", deal, summary, rows, table, json_out, plot,
                        {"deal": settings, "max_new_tokens": max_new_tokens, "limit": len(sets), "split": split,
                         "instruction": INSTRUCTION})
