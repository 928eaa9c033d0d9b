"""`deal bench serve`: throughput and latency of `deal serve` under concurrent load (continuous batching), against
the same requests sent one at a time and against the same load taking turns (no batching), in one run; on llama.cpp
also the same load with `--isolate-calls` (each request in a cache of its own, bit-identical to the request alone).

Each request is a CommonGen prompt with its own keyword reward (sent in the `deal` field), so concurrent requests
differ in their rewards. Every answer is checked against the one-at-a-time answer to the same request. `c` clients
send the `limit` requests back to back (a client sends its next request when its answer arrives), so with more
requests than clients the server sees a sustained load rather than one burst whose slowest request ends it alone.
The forward passes and rows are counted on the backend's verbs (prefill, step, extend), whatever the engine.
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from deal_core.bench.common import bar_plot, write_report
from deal_core.bench.data import load_commongen
from deal_core.decoder import DeAL
from deal_core.errors import ConfigError


def _send(url: str, body: dict[str, Any]) -> tuple[str, int, float]:
    import httpx

    start = time.perf_counter()
    response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=3600)
    response.raise_for_status()
    reply = response.json()
    return reply["choices"][0]["message"]["content"], reply["usage"]["completion_tokens"], time.perf_counter() - start


class Forwards:
    """Counts the engine's forward passes (`prefill`, `step`, `extend` calls on the backend, whatever the engine)
    and the sequences (rows) they carry: shared passes are what batching changes. The model becomes an instance of
    a counting subclass, so the views an engine makes of it (llama.cpp's `isolated()`) count too."""

    VERBS = ("prefill", "step", "extend")

    def __init__(self, deal: DeAL):
        self.calls = self.rows = self.depth = 0
        cls = type(deal.lm)
        deal.lm.__class__ = type(f"Counting{cls.__name__}", (cls,),
                                 {verb: self._counting(getattr(cls, verb)) for verb in self.VERBS})

    def _counting(self, verb: Any) -> Any:
        def counted(lm: Any, handles: Any, *args: Any, **kwargs: Any) -> Any:
            if not self.depth:  # a verb built on another (llama.cpp's step is an extend) is one pass
                self.calls += 1
                self.rows += len(handles)
            self.depth += 1
            try:
                return verb(lm, handles, *args, **kwargs)
            finally:
                self.depth -= 1

        return counted


def _round(url: str, bodies: list[dict[str, Any]], workers: int, forwards: Forwards) -> dict[str, Any]:
    calls, rows = forwards.calls, forwards.rows
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        replies = list(pool.map(lambda body: _send(url, body), bodies))
    wall = time.perf_counter() - start
    latencies = sorted(r[2] for r in replies)
    return {"texts": [r[0] for r in replies], "tokens": sum(r[1] for r in replies), "wall_s": wall,
            "forward_passes": forwards.calls - calls, "rows_per_pass": (forwards.rows - rows) / max(
                forwards.calls - calls, 1),
            "tokens_per_s": sum(r[1] for r in replies) / wall,
            "p50_s": statistics.median(latencies), "p95_s": latencies[min(len(latencies) - 1,
                                                                         round(0.95 * (len(latencies) - 1)))]}


def run(model: str | None = None, data: str | None = None, limit: int = 48, max_new_tokens: int = 32,
        json_out: str | None = None, concurrency: tuple[int, ...] = (1, 4, 16), settings: dict | None = None,
        **_: Any) -> dict[str, Any]:
    from deal_core.serving import create_app, running_server

    if any(c < 1 for c in concurrency):
        raise ConfigError(f"concurrency levels must be >= 1, got {list(concurrency)}")
    deal = DeAL(model)
    forwards = Forwards(deal)
    sets = load_commongen(data, limit)
    bodies = [{"messages": [{"role": "user", "content": s.prompt}], "max_tokens": max_new_tokens,
               "deal": {"rewards": [{"name": "keywords", "keywords": s.concepts}], **(settings or {})}}
              for s in sets]
    with running_server(create_app(deal, batching=True)) as url:
        _send(url, bodies[0])  # warm-up
        alone = _round(url, bodies, 1, forwards)  # one at a time: the baseline, and the answers every round must match
        rounds = {c: _round(url, bodies, c, forwards) for c in concurrency if c > 1}
    with running_server(create_app(deal, batching=False)) as url:  # the same load, requests taking turns
        turns = _round(url, bodies, max(concurrency), forwards)
    extra = [(f"{max(concurrency)}, no batching (turns)", max(concurrency), turns)]
    if not deal.lm.batch_invariant:  # llama.cpp's other server mode: each request in a cache of its own
        with running_server(create_app(deal, batching=True, isolate_calls=True)) as url:
            extra.append((f"{max(concurrency)}, isolated calls (bit-identical)", max(concurrency),
                          _round(url, bodies, max(concurrency), forwards)))
    header = ("| concurrency | tokens/s | × one at a time | p50 latency (s) | p95 latency (s) | forward passes | "
              "rows per pass | same answers |")
    lines = [header, "|---|---|---|---|---|---|---|---|",
             f"| one at a time | {alone['tokens_per_s']:.1f} | 1.00 | {alone['p50_s']:.2f} | {alone['p95_s']:.2f} | "
             f"{alone['forward_passes']} | {alone['rows_per_pass']:.1f} | — |"]
    summary: dict[str, Any] = {"one_at_a_time": {k: v for k, v in alone.items() if k != "texts"}}
    labelled = [(str(c), c, r) for c, r in rounds.items()] + extra
    for label, c, r in labelled:
        same = sum(a == b for a, b in zip(r["texts"], alone["texts"]))
        ratio = r["tokens_per_s"] / alone["tokens_per_s"]
        summary[label] = {**{k: v for k, v in r.items() if k != "texts"}, "ratio": ratio, "same_answers": same}
        lines.append(f"| {label} | {r['tokens_per_s']:.1f} | {ratio:.2f} | {r['p50_s']:.2f} | {r['p95_s']:.2f} | "
                     f"{r['forward_passes']} | {r['rows_per_pass']:.1f} | {same}/{len(bodies)} |")
    table = (f"deal serve under load: {len(bodies)} requests (CommonGen prompts, a keyword reward each), "
             f"{deal.lm.name}, max_tokens={max_new_tokens}, continuous batching unless said\n\n" + "\n".join(lines))

    def plot(path: Any) -> None:
        labels = ["1 at a time", *(label for label, _, _ in labelled)]
        bar_plot(path, labels, {"tokens/s": [alone["tokens_per_s"], *(r["tokens_per_s"] for _, _, r in labelled)]},
                 "deal serve throughput by concurrency")

    rows = {"one_at_a_time": alone["texts"], **{label: r["texts"] for label, _, r in labelled}}
    return write_report("serve", deal, summary, rows, table, json_out, plot,
                        {"concurrency": list(concurrency), "max_new_tokens": max_new_tokens, "deal": settings or {}})
