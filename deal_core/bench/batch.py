"""`deal bench batch`: rows/s and tokens/s of `deal batch` run here (one process) against Ray runs with 1 and 2
replicas on a local Ray cluster, on the same rows, in one session.

The rows are CommonGen prompts, each with its own keyword reward. Every job's time includes loading the model
(once in this process; once per actor on Ray, plus the actors' start), as a real job pays it. The Ray cluster's
own start-up is timed apart: a cluster is started once and serves many jobs. Every Ray output is compared with the
local one.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from deal_core.jobs import connect_ray, disconnect_ray, require_ray, run_batch
from deal_core.bench.common import bar_plot, write_report
from deal_core.bench.data import load_commongen
from deal_core.config import make_config
from deal_core.decoder import DeAL
from deal_core.errors import ConfigError


def _strip(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What "same output" compares: every field but the counters and log P (the same tokens, scored in another
    process's batches, sum to a log P a few 1e-4 apart)."""
    return {json.dumps(r["id"]): {k: v for k, v in r.items() if k not in ("stats", "logprob")} for r in results}


def run(model: str | None = None, data: str | None = None, limit: int = 16, max_new_tokens: int = 32,
        json_out: str | None = None, settings: dict | None = None, replicas: tuple[int, ...] = (1, 2),
        batch_size: int = 8, num_cpus: int | None = None, **_: Any) -> dict[str, Any]:
    import ray

    if any(r < 1 for r in replicas):
        raise ConfigError(f"replica counts must be >= 1, got {list(replicas)}")
    require_ray()
    search = {**(settings or {}), "max_new_tokens": max_new_tokens}
    make_config(**search)
    sets = load_commongen(data, limit)
    rows = [{"id": i, "prompt": s.prompt, "rewards": [{"name": "keywords", "keywords": s.concepts}]}
            for i, s in enumerate(sets)]
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="deal-bench-batch-") as tmp:
        src = Path(tmp) / "in.jsonl"
        src.write_text("".join(json.dumps(r) + "\n" for r in rows))

        start = time.perf_counter()
        deal = DeAL(model, **search)  # the model load is part of the job, as it is for every actor below
        local = run_batch(src, Path(tmp) / "local.jsonl", deal=deal, batch_size=batch_size, keep_results=True)
        runs["local"] = {"report": local, "wall_s": time.perf_counter() - start}

        start = time.perf_counter()
        connected = connect_ray(None, num_cpus=num_cpus)
        cluster_s = time.perf_counter() - start
        try:
            for n in replicas:
                start = time.perf_counter()
                report = run_batch(src, Path(tmp) / f"ray-{n}.jsonl", model=model, settings=search, ray=True,
                                   replicas=n, batch_size=batch_size, keep_results=True)
                runs[f"ray-{n}"] = {"report": report, "wall_s": time.perf_counter() - start}
            cluster_cpus = ray.cluster_resources().get("CPU", 0)
        finally:
            if connected:
                disconnect_ray()

    summary, lines = _summary(runs, len(rows), cluster_s, cluster_cpus)
    table = (f"deal batch: {len(rows)} CommonGen rows (a keyword reward each), {deal.lm.name}, "
             f"max_new_tokens={max_new_tokens}, {cluster_cpus:g}-CPU local Ray cluster (started in "
             f"{cluster_s:.1f} s, not counted); times include loading the model (and starting the actors)\n\n"
             + "\n".join(lines))

    def plot(path: Path) -> None:
        _plot(path, summary, list(runs))

    texts = {name: [r.get("text", r.get("error")) for r in entry["report"].results] for name, entry in runs.items()}
    return write_report("batch", deal, summary, texts, table, json_out, plot,
                        {"max_new_tokens": max_new_tokens, "replicas": list(replicas), "batch_size": batch_size,
                         "deal": settings or {}})


def _summary(runs: dict[str, dict[str, Any]], n_rows: int, cluster_s: float,
             cluster_cpus: float) -> tuple[dict[str, Any], list[str]]:
    """Per run: rows, throughput, ratio to the in-process run, rows equal to its output; and the table's lines."""
    base = _strip(runs["local"]["report"].results)
    summary: dict[str, Any] = {"cluster_start_s": cluster_s, "cluster_cpus": cluster_cpus}
    lines = ["| run | rows | wall (s) | first row after (s) | rows/s | tokens/s | × here | rows/s after the first "
             "| same output as here |", "|---|---|---|---|---|---|---|---|---|"]
    local_rate = n_rows / runs["local"]["wall_s"]
    for name, entry in runs.items():
        report, wall = entry["report"], entry["wall_s"]
        tokens = report.completion_tokens
        same = sum(base.get(k) == v for k, v in _strip(report.results).items())
        first = report.first_result_s + (wall - report.wall_s)  # from the job's start (model load included)
        summary[name] = {"rows": report.written, "errors": report.errors, "wall_s": wall, "first_row_s": first,
                         "steady_rows_per_s": report.steady_rows_per_s,
                         "rows_per_s": report.written / wall, "tokens_per_s": tokens / wall,
                         "ratio": (report.written / wall) / local_rate, "same_output": same}
        label = "here (1 process)" if name == "local" else f"Ray, {name.split('-')[1]} replica(s)"
        lines.append(f"| {label} | {report.written} | {wall:.1f} | {first:.1f} | {report.written / wall:.2f} | "
                     f"{tokens / wall:.1f} | {summary[name]['ratio']:.2f} | {report.steady_rows_per_s:.2f} | "
                     f"{same}/{n_rows} |")
    return summary, lines


def _plot(path: Path, summary: dict[str, Any], names: list[str]) -> None:
    bar_plot(path, ["here" if n == "local" else f"Ray ×{n.split('-')[1]}" for n in names],
             {"rows/s, whole job": [summary[n]["rows_per_s"] for n in names],
              "rows/s after the first row": [summary[n]["steady_rows_per_s"] for n in names]},
             "deal batch throughput")
