"""`deal bench speed`: wall time per token of DeAL modes against transformers' greedy `generate`, same prompts,
interleaved in one process, with the coverage each mode reaches."""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from deal_core.bench import quality
from deal_core.bench.data import load_commongen
from deal_core.config import settings_of
from deal_core.decoder import DeAL
from deal_core.rewards import Fluency, Keywords

_DEFAULT, _PAPER = settings_of("default"), settings_of("paper")
MODES: dict[str, dict[str, Any]] = {
    "greedy (transformers)": {"greedy": True},
    "greedy + no_repeat_ngram_size=3": {"greedy": True, "no_repeat_ngram_size": 3},
    "DeAL token k{top_k} l{lookahead} λ{reward_weight:g} (paper)".format(**_PAPER): _PAPER,
    "DeAL token k10 l10 λ5 (previous default)": {**_DEFAULT, "lookahead": 10, "reward_weight": 5.0},
    "DeAL token k{top_k} l{lookahead} λ{reward_weight:g} (default)".format(**_DEFAULT): _DEFAULT,
    "DeAL default + no_repeat_ngram_size=3": {**_DEFAULT, "no_repeat_ngram_size": 3},
    "DeAL segment k5 l8 c9": {**_PAPER, "lookahead": _DEFAULT["lookahead"], "commit": _DEFAULT["lookahead"] + 1},
}


def cold_start_seconds(model: str | None) -> float:
    """A fresh interpreter importing the library and loading the model (weights already cached)."""
    code = ("import time; t = time.perf_counter(); from deal_core import load_model; "
            f"load_model({model!r}); print(time.perf_counter() - t)")
    load = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(load.stdout.strip().splitlines()[-1])


def profile(result: Any) -> dict[str, float]:
    """Where one answer's search went: per committed token, forward passes, token rows, candidates rolled out,
    lookahead tokens run, and candidates that no exact pruning could skip (`SearchStats`)."""
    st, n = result.stats, max(len(result.token_ids), 1)
    return {"forward_passes": st.forward_passes, "tokens_evaluated": st.tokens_evaluated,
            "reward_calls": st.reward_calls, "rolled_out": st.candidates_rolled_out, "rollout_tokens": st.rollout_tokens,
            "needed": st.candidates_needed, "steps": st.steps, "tokens": n}


def run(model: str | None = None, data: str | None = None, limit: int = 20, max_new_tokens: int = 64,
        json_out: str | None = None, modes: dict[str, dict[str, Any]] | None = None, split: str = "all",
        **_: Any) -> dict:
    console = Console(width=max(Console().width, 140))
    modes = modes or MODES
    sets = load_commongen(data, limit, split)
    cold = cold_start_seconds(model)
    deal = DeAL(model, max_new_tokens=max_new_tokens)
    deal.generate(sets[0].prompt, max_new_tokens=4)  # warm-up: first-call allocations are not the search's cost
    rows: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    with Progress(console=console) as progress:
        task = progress.add_task(f"speed ({split})", total=len(sets) * len(modes))
        for s in sets:
            for name, settings in modes.items():  # interleaved: drift in machine speed hits every mode alike
                rows[name].append(_one(deal, s, settings))
                progress.advance(task)
    summary = _summary(rows)
    console.print(_table(summary, f"speed on {len(sets)} CommonGen prompts ({split} split), {deal.lm.name}, "
                                  f"max_new_tokens={max_new_tokens}"))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    console.print(f"cold start (import + load, cached weights): {cold:.2f} s; peak RSS: {peak_mb:.0f} MB")
    report = {"summary": summary, "rows": rows, "cold_start_s": cold, "peak_rss_mb": peak_mb, "split": split,
              "model": deal.lm.name, "limit": len(sets), "max_new_tokens": max_new_tokens}
    if json_out:
        Path(json_out).write_text(json.dumps(report, indent=2))
        tradeoff_plot(Path(json_out).with_suffix(".png"), summary,
                      f"{len(sets)} CommonGen prompts ({split} split), {deal.lm.name}")
    return report


def _one(deal: DeAL, s: Any, settings: dict[str, Any] | None) -> dict[str, Any]:
    """One concept set in one mode: the search's counters, seconds per token and the quality judge's verdict."""
    settings = dict(settings or {})
    keywords = Keywords(keywords=s.concepts)
    fluency = settings.pop("fluency", 0.0)  # a Fluency reward of this weight beside the keywords
    reward = keywords + Fluency() * fluency if fluency else keywords
    start = time.perf_counter()
    result = (deal.greedy(s.prompt, **settings) if settings.pop("greedy", False)
              else deal.generate(s.prompt, rewards=reward, **settings))
    seconds = time.perf_counter() - start
    row = profile(result)
    row.update(s_per_token=seconds / row["tokens"], text=result.text, concepts=s.concepts,
               **quality.judge(s.concepts, result.text))
    return row


def _summary(rows: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, float]]:
    """Per mode: medians per token or step, and time per token as a ratio to the first mode's, prompt by prompt."""
    base = [r["s_per_token"] for r in next(iter(rows.values()))]
    summary = {}
    for name, results in rows.items():
        ratios = [r["s_per_token"] / b for r, b in zip(results, base)]

        def per(key: str, by: str = "tokens", results: list = results) -> float:
            return statistics.median(r[key] / max(r[by], 1) for r in results)

        summary[name] = {
            "ms_per_token": 1000 * statistics.median(r["s_per_token"] for r in results),
            "ratio_to_greedy": statistics.median(ratios),
            "ratio_min": min(ratios), "ratio_max": max(ratios),
            "forward_passes_per_token": per("forward_passes"),
            "tokens_evaluated_per_token": per("tokens_evaluated"),
            "reward_calls_per_token": per("reward_calls"),
            "rolled_out_per_step": per("rolled_out", "steps"),
            "rollout_tokens_per_step": per("rollout_tokens", "steps"),
            "needed_per_step": per("needed", "steps"),
            "coverage": statistics.mean(r["coverage"] for r in results),
            "hard_coverage": statistics.mean(r["all_concepts"] for r in results),
            "degenerate": statistics.mean(r["degenerate"] for r in results),
            "clean_hard_coverage": statistics.mean(r["clean_all_concepts"] for r in results),
        }
    return summary


def _table(summary: dict[str, dict[str, float]], title: str) -> Table:
    table = Table(title=title)
    columns = ("mode", "ms/tok", "×greedy", "range", "fwd/tok", "rows/tok", "rolled/step", "la tok/step",
               "needed/step", "cov", "all", "degen", "clean all")
    for col in columns:
        table.add_column(col, justify="right" if col != "mode" else "left")
    for name, s in summary.items():
        table.add_row(name, f"{s['ms_per_token']:.1f}", f"{s['ratio_to_greedy']:.2f}",
                      f"{s['ratio_min']:.1f}–{s['ratio_max']:.1f}", f"{s['forward_passes_per_token']:.2f}",
                      f"{s['tokens_evaluated_per_token']:.1f}", f"{s['rolled_out_per_step']:.1f}",
                      f"{s['rollout_tokens_per_step']:.1f}", f"{s['needed_per_step']:.1f}", f"{s['coverage']:.2f}",
                      f"{s['hard_coverage']:.0%}", f"{s['degenerate']:.0%}", f"{s['clean_hard_coverage']:.0%}")
    return table


def tradeoff_plot(path: Path, summary: dict[str, dict[str, float]], title: str) -> None:
    """Each mode as a point: time per token against greedy (x) and clean coverage of every concept (y)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    seen: list[tuple[float, float]] = []
    for name, s in summary.items():
        point = (s["ratio_to_greedy"], s["clean_hard_coverage"])
        near = sum(abs(point[0] - x) < 0.15 and abs(point[1] - y) < 0.03 for x, y in seen)  # stack their labels
        seen.append(point)
        ax.scatter(*point, s=40 + 200 * s["degenerate"])
        ax.annotate(name, point, fontsize=8, xytext=(6, 4 - 11 * near), textcoords="offset points")
    ax.margins(x=0.35, y=0.1)
    ax.set_xlabel("time per token, × greedy (median)")
    ax.set_ylabel("every concept, not a list or a loop")
    ax.set_title(f"{title}\n(marker size: share of degenerate answers)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
