"""Every error a CLI user can cause is one line on stderr and exit status 2; `--debug` shows the traceback.
The error cases run `main(argv)` in this process; the interpreter-level ones (`--debug`, `python -m`) spawn one."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from deal_core.bench.data import DataError, load_advbench, load_commongen
from deal_core.cli import main


def deal(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deal_core.cli", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def run_main(args: list[str], capsys) -> tuple[int, str, str]:
    """`deal ARGS` in this process: (exit status, stdout, stderr)."""
    with pytest.raises(SystemExit) as exited:
        main(args)
    out = capsys.readouterr()
    return exited.value.code, out.out, out.err


@pytest.mark.parametrize(("args", "needle"), [
    (["generate", "Hi", "--greedy", "--top-k", "0", "--json"], "top_k"),  # checked before any model loads
    (["bench", "commongen", "--limit", "1", "--top-k", "0"], "top_k"),
    (["bench", "commongen", "--limit", "0"], "--limit"),  # rejected, not taken as "the task default"
    (["bench", "demo", "--max-new-tokens", "0"], "--max-new-tokens"),
    (["generate"], "Missing argument"),
    (["generate", "Hi", "--no-such-option"], "No such option"),
    (["generate", "Hi", "--reward", "nope"], "unknown reward"),
    (["generate", "Hi", "--reward", "length=abc"], "length"),
    (["bench", "nope"], "unknown bench task"),
    (["bench", "commongen", "--data", "/no/such.jsonl"], "does not exist"),
    (["generate", "Hi", "--model", "/no/such/model/dir"], "model directory '/no/such/model/dir' does not exist"),
    (["bench", "demo", "--concurrency", "2"], "--concurrency is for"),
    (["bench", "serve", "--concurrency", "a,b"], "comma-separated integers"),
    (["generate", "Hi", "--temperature", "0.001"], "too small"),
    (["generate", "Hi", "--repetition-penalty", "0"], "repetition_penalty"),
    (["generate", "Hi", "--no-repeat-ngram-size", "-1"], "no_repeat_ngram_size"),
    (["bench", "demo", "--split", "hard"], "--split is for"),
    (["bench", "speed", "--split", "medium"], "unknown --split"),
    (["bench", "harmless", "--split", "hard"], "choose one of: dev, test, all"),
])
def test_cli_errors_are_one_line_and_exit_2(args, needle, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(args, capsys)
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert needle in err
    assert "Traceback" not in err and out == ""


def test_debug_flag_shows_the_traceback(tmp_path):
    proc = deal("--debug", "bench", "nope", cwd=tmp_path)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "UnknownTask" in proc.stderr


def test_help_still_works():
    proc = deal("generate", "--help")
    assert proc.returncode == 0 and "--top-k" in proc.stdout


def test_bad_data_files_name_the_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"concept_set": "dog_N#park_N"}\n{"concept_set": 3}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2"):
        load_commongen(bad)
    csv = tmp_path / "bad.csv"
    csv.write_text("question,answer\nx,y\n")
    with pytest.raises(DataError, match="'goal' and 'target'"):
        load_advbench(csv)


def test_shipped_data_is_the_default(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # nothing beside the working directory
    monkeypatch.delenv("DEAL_DATA_DIR", raising=False)
    sets = load_commongen(limit=3)
    assert len(sets) == 3 and all(len(s.concepts) >= 3 for s in sets) and sets[0].references
    assert len(load_advbench(limit=2)) == 2
    assert len(load_commongen()) == 993 and len(load_advbench()) == 260  # the whole shipped files
    monkeypatch.setenv("DEAL_DATA_DIR", str(tmp_path / "missing"))
    with pytest.raises(DataError, match="DEAL_DATA_DIR"):
        load_commongen()


@pytest.mark.slow
def test_generated_text_is_printed_verbatim(tmp_path):
    """The model's text is not rich markup: brackets, emoji codes and long lines come out as they are."""
    proc = deal("generate", "Repeat exactly: [/b] hello :smile:", "--greedy", "--max-new-tokens", "12", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    as_json = deal("generate", "Repeat exactly: [/b] hello :smile:", "--greedy", "--max-new-tokens", "12", "--json",
                   cwd=tmp_path)
    assert proc.stdout == json.loads(as_json.stdout)["text"] + "\n"
