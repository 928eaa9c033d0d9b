"""Shared pieces of the alignment benchmarks: conditions, best-of-N, fluency, and the report (JSON, table, plot)."""

from __future__ import annotations

import json
import math
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import Progress

from deal_core.decoder import DeAL
from deal_core.prompts import PromptLike, encode_prompt
from deal_core.rewards import Reward, RewardSum, as_reward_sum

SEED = 0


@dataclass
class Condition:
    """One way of answering: greedy, best-of-N reranking, or DeAL; optionally with an alignment instruction."""

    name: str
    method: str  # "greedy" | "best_of_n" | "deal"
    alignment_prompt: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)


def console() -> Console:
    return Console(width=max(Console().width, 140))


def best_of_n(deal: DeAL, prompt: PromptLike, reward: Reward | RewardSum, n: int, alignment_prompt: str | None,
              max_new_tokens: int, seed: int = SEED) -> str:
    """Sample n complete responses (temperature 1, top-p 0.95) and keep the one the reward likes best."""
    lm = deal.lm
    with lm.lock:
        encoded = encode_prompt(lm, prompt, alignment_prompt)
    samples = lm.generate(encoded.ids, max_new_tokens=max_new_tokens, n=n, sample=True, top_p=0.95, seed=seed)
    texts = lm.decode_batch([s.tokens for s in samples])
    scores = as_reward_sum(reward).evaluate([encoded.request] * n, texts, True).total
    return texts[max(range(n), key=lambda i: scores[i])]


def answer(deal: DeAL, condition: Condition, prompt: PromptLike, reward: Reward | RewardSum,
           max_new_tokens: int) -> str:
    return answer_tokens(deal, condition, prompt, reward, max_new_tokens)[0]


def answer_tokens(deal: DeAL, condition: Condition, prompt: PromptLike, reward: Reward | RewardSum,
                  max_new_tokens: int) -> tuple[str, int]:
    """The condition's answer and its length in tokens (best-of-N: the kept sample, re-encoded)."""
    if condition.method == "best_of_n":
        text = best_of_n(deal, prompt, reward, condition.settings["n"], condition.alignment_prompt, max_new_tokens)
        with deal.lm.lock:
            return text, len(deal.lm.encode_text(text, special_tokens=False))
    if condition.method == "greedy":
        result = deal.greedy(prompt, alignment_prompt=condition.alignment_prompt, max_new_tokens=max_new_tokens)
    else:
        result = deal.generate(prompt, rewards=reward, alignment_prompt=condition.alignment_prompt,
                               max_new_tokens=max_new_tokens, **condition.settings)
    return result.text, len(result.token_ids)


def perplexity(deal: DeAL, prompt: PromptLike, response: str) -> float:
    """The base LM's perplexity of `response` after the plain prompt (no alignment instruction): fluency."""
    lm = deal.lm
    with lm.lock:
        ids = encode_prompt(lm, prompt).ids
        resp = lm.encode_text(response, special_tokens=False)
    if not resp:
        return float("nan")
    logps = lm.continuation_logprobs(ids, resp)
    return math.exp(-sum(logps) / len(logps))


def run_conditions(deal: DeAL, items: Sequence[Any], conditions: Sequence[Condition],
                   prompt_of: Callable[[Any], PromptLike], reward_of: Callable[[Any], Reward | RewardSum],
                   max_new_tokens: int, title: str) -> dict[str, list[dict[str, Any]]]:
    """Answer every item under every condition (interleaved), timing each answer."""
    rows: dict[str, list[dict[str, Any]]] = {c.name: [] for c in conditions}
    with Progress(console=console()) as progress:
        task = progress.add_task(title, total=len(items) * len(conditions))
        for item in items:
            for condition in conditions:
                start = time.perf_counter()
                text = answer(deal, condition, prompt_of(item), reward_of(item), max_new_tokens)
                rows[condition.name].append({"text": text, "seconds": time.perf_counter() - start})
                progress.advance(task)
    return rows


def mean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return statistics.mean(finite) if finite else float("nan")


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def fmt(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def environment(deal: DeAL) -> dict[str, Any]:
    import transformers

    import deal_core

    return {"model": deal.lm.name, "device": str(getattr(deal.lm, "device", "n/a")), "seed": SEED, "python": platform.python_version(),
            "torch": torch.__version__, "transformers": transformers.__version__, "deal": deal_core.__version__,
            "machine": platform.machine(), "cpus": torch.get_num_threads()}


def write_report(task: str, deal: DeAL, summary: dict[str, Any], rows: Any, table: str, json_out: str | None,
                 plot: Callable[[Path], None] | None, settings: dict[str, Any]) -> dict[str, Any]:
    report = {"task": task, "environment": environment(deal), "settings": settings, "summary": summary,
              "rows": rows, "table": table}
    out = console()
    out.print(table)
    if json_out:
        path = Path(json_out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2, default=str))
        path.with_suffix(".md").write_text(table + "\n")
        if plot is not None:
            plot(path.with_suffix(".png"))
        out.print(f"wrote {path}, {path.with_suffix('.md')}" + (f", {path.with_suffix('.png')}" if plot else ""))
    return report


def bar_plot(path: Path, labels: Sequence[str], series: dict[str, Sequence[float]], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / max(len(series), 1)
    for i, (name, values) in enumerate(series.items()):
        ax.bar([x + i * width for x in range(len(labels))], values, width, label=name)
    ax.set_xticks([x + width * (len(series) - 1) / 2 for x in range(len(labels))], labels, rotation=15, ha="right")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
