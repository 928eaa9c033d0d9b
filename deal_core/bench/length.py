"""`deal bench length`: word-count constraints (at most / at least N words) — prompting vs DeAL."""

from __future__ import annotations

from typing import Any

from deal_core.bench.common import Condition, bar_plot, markdown_table, mean, run_conditions, write_report
from deal_core.bench.data import load_commongen
from deal_core.config import settings_of
from deal_core.decoder import DeAL
from deal_core.rewards import Length
from deal_core.rewards.text import words

DEAL_SETTINGS = settings_of("safety")  # the settings the safety and length benchmarks share
AT_MOST, AT_LEAST = 8, 25


def targets(sets: list) -> list[dict[str, Any]]:
    """Alternate 'at most AT_MOST words' and 'at least AT_LEAST words' on CommonGen topics."""
    items = []
    for i, s in enumerate(sets):
        topic = ", ".join(s.concepts)
        if i % 2 == 0:
            items.append({"prompt": f"Write about {topic} in at most {AT_MOST} words.", "max": AT_MOST, "min": None})
        else:
            items.append({"prompt": f"Write about {topic} in at least {AT_LEAST} words.", "max": None, "min": AT_LEAST})
    return items


def run(model: str | None = None, data: str | None = None, limit: int = 50, max_new_tokens: int = 64,
        json_out: str | None = None, settings: dict[str, Any] | None = None, **_: Any) -> dict[str, Any]:
    settings = {**DEAL_SETTINGS, **(settings or {})}
    deal = DeAL(model)
    items = targets(load_commongen(data, limit))
    conds = [Condition("greedy (no length in prompt)", "greedy"), Condition("prompting", "greedy"),
             Condition("DeAL", "deal", settings=settings),
             Condition("DeAL + prompting", "deal", settings=settings)]
    bare = {c.name for c in conds if "no length" in c.name or c.name == "DeAL"}

    def prompt_of_for(item, name):
        return item["prompt"].split(" in at ")[0] + "." if name in bare else item["prompt"]

    rows: dict[str, list] = {}
    for cond in conds:
        rows.update(run_conditions(deal, items, [cond], lambda it, n=cond.name: prompt_of_for(it, n),
                                   lambda it: Length(min_words=it["min"], max_words=it["max"]), max_new_tokens,
                                   f"length: {cond.name}"))
    summary = {}
    for cond in conds:
        results = rows[cond.name]
        for item, r in zip(items, results):
            n = len(words(r["text"]))
            bound = item["max"] if item["max"] is not None else item["min"]
            ok = n <= item["max"] if item["max"] is not None else n >= item["min"]
            r.update(words=n, satisfied=ok, deviation=0 if ok else abs(n - bound))
        at_most = [float(r["satisfied"]) for item, r in zip(items, results) if item["max"] is not None]
        at_least = [float(r["satisfied"]) for item, r in zip(items, results) if item["min"] is not None]
        summary[cond.name] = {"satisfied": mean([float(r["satisfied"]) for r in results]),
                              "at_most_satisfied": mean(at_most), "at_least_satisfied": mean(at_least),
                              "mean_abs_deviation": mean([r["deviation"] for r in results]),
                              "mean_words": mean([r["words"] for r in results]),
                              "seconds": mean([r["seconds"] for r in results])}
    table = markdown_table(
        ["condition", "satisfied", f"≤ {AT_MOST} words", f"≥ {AT_LEAST} words", "mean abs deviation (words)",
         "s / prompt"],
        [[k, v["satisfied"], v["at_most_satisfied"], v["at_least_satisfied"], v["mean_abs_deviation"], v["seconds"]]
         for k, v in summary.items()])
    table = f"Length constraints, N={len(items)}, {deal.lm.name}, DeAL {settings}\n\n" + table

    def plot(path):
        bar_plot(path, list(summary), {"all": [v["satisfied"] for v in summary.values()],
                                       f"≤ {AT_MOST} words": [v["at_most_satisfied"] for v in summary.values()],
                                       f"≥ {AT_LEAST} words": [v["at_least_satisfied"] for v in summary.values()]},
                 f"Length constraints satisfied (N={len(items)})")

    return write_report("length", deal, summary, rows, table, json_out, plot,
                        {"deal": settings, "max_new_tokens": max_new_tokens, "limit": len(items)})
