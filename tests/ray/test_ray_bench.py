"""`deal bench batch` end to end on a small load: the local run and Ray runs with 1 and 2 replicas on a local
cluster the benchmark starts (2 CPUs) and stops, one report with rows/s, tokens/s and output checks."""

from __future__ import annotations

import json

import pytest
import ray

from deal_core.bench import run_task

pytestmark = pytest.mark.slow


def test_bench_batch_compares_replicas_with_the_local_run(tmp_path):
    out = tmp_path / "batch.json"
    report = run_task("batch", limit=3, max_new_tokens=4, settings={"top_k": 2, "lookahead": 1}, num_cpus=2,
                      json_out=str(out))
    summary = report["summary"]
    assert summary["cluster_cpus"] == 2 and not ray.is_initialized()  # its own cluster, stopped afterwards
    for name in ("local", "ray-1", "ray-2"):
        run = summary[name]
        assert (run["rows"], run["errors"], run["same_output"]) == (3, 0, 3)
        assert run["rows_per_s"] > 0 and run["tokens_per_s"] > 0 and 0 < run["first_row_s"] <= run["wall_s"]
    assert summary["local"]["ratio"] == 1.0
    assert json.loads(out.read_text())["summary"]["ray-2"]["rows"] == 3
    assert out.with_suffix(".png").stat().st_size > 0 and "Ray, 2 replica(s)" in out.with_suffix(".md").read_text()
