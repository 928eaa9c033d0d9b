"""`deal bench tradeoff`: sweep λ and plot the objective (keyword coverage) against fluency (perplexity)."""

from __future__ import annotations

from typing import Any

from deal_core.bench.common import console, markdown_table, mean, perplexity, write_report
from deal_core.bench.data import load_commongen
from deal_core.decoder import DeAL
from deal_core.rewards import Keywords

WEIGHTS = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0)


def run(model: str | None = None, data: str | None = None, limit: int = 20, max_new_tokens: int = 40,
        json_out: str | None = None, weights: tuple[float, ...] = WEIGHTS, settings: dict[str, Any] | None = None,
        **_: Any) -> dict[str, Any]:
    settings = settings or {}
    top_k, lookahead = settings.get("top_k", 10), settings.get("lookahead", 10)
    from rich.progress import Progress

    deal = DeAL(model)
    sets = load_commongen(data, limit)
    rows: dict[str, list[dict[str, Any]]] = {}
    with Progress(console=console()) as progress:
        task = progress.add_task("tradeoff", total=len(sets) * len(weights))
        for s in sets:
            reward = Keywords(s.concepts)
            for w in weights:
                r = deal.generate(s.prompt, rewards=reward, reward_weight=w, top_k=top_k, lookahead=lookahead,
                                  max_new_tokens=max_new_tokens)
                rows.setdefault(str(w), []).append({"text": r.text, "coverage": r.rewards["keywords"],
                                                    "perplexity": perplexity(deal, s.prompt, r.text),
                                                    "seconds": r.stats.wall_time_s})
                progress.advance(task)
    summary = {w: {"coverage": mean([r["coverage"] for r in rs]), "perplexity": mean([r["perplexity"] for r in rs]),
                   "hard_coverage": mean([float(r["coverage"] == 1.0) for r in rs]),
                   "seconds": mean([r["seconds"] for r in rs])} for w, rs in rows.items()}
    table = markdown_table(["λ", "soft coverage", "hard coverage", "perplexity", "s / prompt"],
                           [[w, v["coverage"], v["hard_coverage"], v["perplexity"], v["seconds"]]
                            for w, v in summary.items()])
    table = f"Trade-off on CommonGen, N={len(sets)}, top_k={top_k}, lookahead={lookahead}\n\n" + table

    def plot(path):
        _plot(path, summary, len(sets))

    return write_report("tradeoff", deal, summary, rows, table, json_out, plot,
                        {"weights": list(weights), "top_k": top_k, "lookahead": lookahead,
                         "max_new_tokens": max_new_tokens, "limit": len(sets)})


def _plot(path: str, summary: dict[str, dict[str, float]], n: int) -> None:
    """Coverage against perplexity, one point per λ."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    xs = [v["perplexity"] for v in summary.values()]
    ys = [v["coverage"] for v in summary.values()]
    ax.plot(xs, ys, marker="o")
    for i, (w, x, y) in enumerate(zip(summary, xs, ys)):  # alternate sides so close points stay readable
        ax.annotate(f"λ={w}", (x, y), textcoords="offset points", xytext=(6, 6 if i % 2 else -14))
    ax.set_xlabel("perplexity of the output (lower = more fluent)")
    ax.set_ylabel("keyword coverage")
    ax.set_title(f"Objective vs fluency as λ grows (N={n})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
