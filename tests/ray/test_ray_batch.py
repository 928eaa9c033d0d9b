"""`deal batch --ray` on a real local Ray cluster (started here, 2 CPUs) with the real embedded model: two actors
share the rows, and the output equals the local run's, error rows included; the CLI joins an existing cluster by
address and resumes a partly written output."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import ray

from deal_core import DeAL, DeALError, load_model
from deal_core.jobs import run_batch
from deal_core.bench.data import load_commongen
from deal_core.rewards import Keywords

pytestmark = pytest.mark.slow
SETTINGS = {"top_k": 3, "lookahead": 2, "max_new_tokens": 10}
DEFAULT = [{"name": "keywords", "keywords": ["sun"], "weight": 1.0}]


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def rows_file(tmp_path_factory):
    sets = load_commongen(None, 6)
    rows = [{"id": i, "prompt": s.prompt} for i, s in enumerate(sets[:4])]  # the job's default rewards
    rows += [{"id": f"own-{i}", "messages": [{"role": "user", "content": s.prompt}],
              "rewards": [{"name": "keywords", "keywords": s.concepts}]} for i, s in enumerate(sets[4:])]
    rows.append({"id": "too-long", "prompt": "word " * 9000, "rewards": []})  # over the 8192-token window
    path = tmp_path_factory.mktemp("rows") / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def results(path) -> dict:
    """Rows by id, without `stats` (timings, worker names and batch sizes differ between runs) and `logprob` (the same
    tokens scored in another process's batches sum to a slightly different log P: compared by `logprobs`)."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == len({json.dumps(r["id"]) for r in rows})  # every id once
    return {r["id"]: {k: v for k, v in r.items() if k not in ("stats", "logprob")} for r in rows}


def logprobs(path) -> dict:
    return {r["id"]: pytest.approx(r["logprob"], abs=1e-3) for r in map(json.loads, path.read_text().splitlines())
            if "logprob" in r}


@pytest.fixture(scope="module")
def local_out(rows_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "out.jsonl"
    deal = DeAL(load_model(), rewards=Keywords(["sun"]), **SETTINGS)
    report = run_batch(rows_file, out, deal=deal, batch_size=2, progress=False)
    assert (report.written, report.errors) == (7, 1)
    return out


def test_two_actors_give_the_local_output(cluster, rows_file, local_out, tmp_path):
    out = tmp_path / "out.jsonl"
    report = run_batch(rows_file, out, reward_specs=DEFAULT, settings=SETTINGS, batch_size=2, ray=True, replicas=2,
                       progress=False, keep_results=True)
    assert ray.is_initialized()  # the test's cluster was used as it was, and left running
    assert (report.written, report.errors, report.mode) == (7, 1, "ray")
    assert results(out) == results(local_out)
    assert logprobs(local_out) == logprobs(out)
    ok = [r for r in report.results if "error" not in r]
    workers = {r["stats"]["worker"] for r in ok}
    assert len(workers) == 2 and all(w.split(":")[-1] != str(os.getpid()) for w in workers)  # both actors worked
    # the four rows with the default rewards were searched two at a time; rows with rewards of their own alone
    assert {r["id"]: r["stats"]["batch_rows"] for r in ok} == {0: 2, 1: 2, 2: 2, 3: 2, "own-0": 1, "own-1": 1}
    error = results(out)["too-long"]
    assert error["error_type"] == "ContextLengthError" and "context window" in error["error"]
    assert all(r["text"].strip() and r["usage"]["completion_tokens"] > 0 for r in ok)


def test_cli_joins_the_cluster_by_address_and_resumes(cluster, rows_file, local_out, tmp_path):
    out = tmp_path / "out.jsonl"
    kept = local_out.read_text().splitlines()[:4]  # a job that stopped after four rows
    out.write_text("\n".join(kept) + "\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "deal_core.cli", "batch", str(rows_file), str(out), "--reward", "keywords=sun",
         "--top-k", "3", "--lookahead", "2", "--max-new-tokens", "10", "--batch-size", "2", "--ray", "--address",
         cluster, "--replicas", "1"],
        capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "3 rows written on Ray (1 replica) (1 with errors, 4 already done)" in proc.stderr
    assert results(out) == results(local_out)
    assert ray.is_initialized() and ray.cluster_resources().get("CPU") == 2  # the cluster outlived the CLI


def test_a_replica_that_cannot_load_its_model_stops_the_job_with_the_reason(cluster, rows_file, tmp_path):
    with pytest.raises(DeALError, match="a Ray replica failed: ModelLoadError: model directory '/no/such/model' "
                                        "does not exist"):
        run_batch(rows_file, tmp_path / "out.jsonl", model="/no/such/model", ray=True, progress=False)
    assert ray.is_initialized()
