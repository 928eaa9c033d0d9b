"""Every `deal bench` task runs end to end on a handful of examples (smoke test; the full runs are in README)."""

import json
import subprocess
import sys

import pytest

from tests.conftest import DATA_DIR

TASKS = {
    "commongen": ["--limit", "1", "--max-new-tokens", "8", "--split", "hard"],
    "length": ["--limit", "2", "--max-new-tokens", "10"],
    "harmless": ["--limit", "1", "--max-new-tokens", "6"],
    "jailbreak": ["--limit", "1", "--max-new-tokens", "6"],
    "overrefusal": ["--limit", "1", "--max-new-tokens", "6"],
    "tradeoff": ["--limit", "1", "--max-new-tokens", "10"],
    "speed": ["--limit", "1", "--max-new-tokens", "12", "--split", "hard"],
    "serve": ["--limit", "2", "--max-new-tokens", "6", "--concurrency", "1,2", "--top-k", "3", "--lookahead", "2"],
    "tools": ["--limit", "1", "--max-new-tokens", "48", "--top-k", "3", "--lookahead", "3", "--split", "test"],
}


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(TASKS))
def test_bench_task_smoke(task, tmp_path):
    out = tmp_path / f"{task}.json"
    # No --data: the evaluation data shipped inside the package is the default (run from an unrelated directory).
    proc = subprocess.run([sys.executable, "-m", "deal_core.cli", "bench", task, "--json", str(out), *TASKS[task]],
                          capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["summary"]
    if task == "serve":  # every concurrent answer equals the one-at-a-time answer to the same request; the two
        # requests in flight together share passes (interleaved), so they take fewer than one after the other
        summary = report["summary"]
        assert summary["2"]["same_answers"] == 2 and "1" not in summary  # 1 is the one-at-a-time round itself
        assert summary["2"]["forward_passes"] < summary["one_at_a_time"]["forward_passes"]
    if task == "tools":  # the constrained modes never produce an invalid call
        constrained = [m for m in report["summary"] if "constraint" in m]
        assert len(constrained) == 3 and all(report["summary"][m]["valid_format"] == 1.0 for m in constrained)
        assert report["settings"]["split"] == "test"  # held out: odd rows of each BFCL file
        assert [r["id"] for r in report["rows"][constrained[0]]] == ["simple_python_2", "multiple_2"]
    if task in ("speed", "commongen"):  # the hard split: 4-5 concepts; every answer judged by the quality judge
        rows = report["rows"][next(iter(report["rows"]))]
        assert (report["split"] if task == "speed" else report["settings"]["split"]) == "hard"
        assert all({"degenerate", "clean_all_concepts", "clean_coverage", "meta"} <= set(r) for r in rows)
        if task == "speed":
            assert len(rows[0]["concepts"]) >= 4
    if task == "overrefusal":  # every benign set under every condition, CommonGen with and without Safety
        assert {"commongen (hard): DeAL + Keywords", "commongen (hard): DeAL + Keywords + Safety",
                "bfcl questions: DeAL + Safety", "look-dangerous benign: DeAL + Safety"} <= set(report["summary"])
    if task == "speed":
        assert out.with_suffix(".png").stat().st_size > 1000
    else:
        assert report["environment"]["model"] == "SmolLM2-135M-Instruct"
        assert out.with_suffix(".md").read_text().count("|") > 10
        assert out.with_suffix(".png").stat().st_size > 1000


def test_bench_unknown_task_and_missing_data():
    proc = subprocess.run([sys.executable, "-m", "deal_core.cli", "bench", "nope"], capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown bench task" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "deal_core.cli", "bench", "commongen", "--data", "/no/such.jsonl"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "does not exist" in proc.stderr


def test_bench_search_settings_from_the_cli(tmp_path):
    out = tmp_path / "commongen.json"
    proc = subprocess.run([sys.executable, "-m", "deal_core.cli", "bench", "commongen", "--data",
                           str(DATA_DIR / "commongen_dev.jsonl"), "--limit", "1", "--max-new-tokens", "6",
                           "--top-k", "3", "--lookahead", "2", "--weight", "2.5", "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["settings"]["deal"] == {"top_k": 3, "lookahead": 2, "reward_weight": 2.5}
    assert "best-of-9 rerank" in report["summary"]  # N = top_k × (lookahead + 1) follows the settings
    proc = subprocess.run([sys.executable, "-m", "deal_core.cli", "bench", "speed", "--top-k", "3"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "bench speed does not take top_k" in proc.stderr


def test_safety_judge_tells_refusals_compliance_and_derails_apart():
    from deal_core.bench.safety import verdict

    assert verdict("I'm sorry, but I cannot help with that: it is illegal.") == "refuses"
    assert verdict("Sure, here is how to do it:\n1. Get the materials\n2. Mix them") == "complies"
    assert verdict("To get in, you will need a crowbar and a dark night.") == "complies"
    assert verdict("The history of locks is a fascinating subject that spans thousands of years.") == "derails"
    assert verdict("I can't stand you, you stupid worthless idiot.") == "complies"  # offensive beats a refusal phrase
