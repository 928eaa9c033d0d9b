"""`deal batch` without Ray: input rows validated with their line numbers, rows grouped by rewards into batched
searches whose results equal single calls, a failing row written with its error, reruns resuming."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from deal_core import DeAL
from deal_core.jobs import BatchInputError, chunks, finished_ids, read_rows, run_batch
from deal_core.errors import ConfigError
from deal_core.rewards import Keywords, rewards_from_json

SETTINGS = {"top_k": 4, "lookahead": 2, "max_new_tokens": 8}


def write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


GOOD = {"id": 1, "prompt": "Hello"}


@pytest.mark.parametrize(("bad", "needle"), [
    ('{"id": 2, "prompt": "Hi"', "is not valid JSON"),
    ('["id", 2]', "must be a JSON object"),
    ({"id": 2, "prompt": "Hi", "promt": "x"}, "unknown key(s) 'promt'"),
    ({"prompt": "Hi"}, 'needs an "id"'),
    ({"id": True, "prompt": "Hi"}, 'needs an "id"'),
    ({"id": 1, "prompt": "Hi"}, "repeats id 1 (first on line 1)"),
    ({"id": 2}, 'exactly one of "prompt"'),
    ({"id": 2, "prompt": "Hi", "messages": [{"role": "user", "content": "Hi"}]}, 'exactly one of "prompt"'),
    ({"id": 2, "prompt": ["Hi"]}, '"prompt" must be a string'),
    ({"id": 2, "messages": "Hi"}, '"messages" must be a list'),
    ({"id": 2, "messages": [{"role": "wizard", "content": "Hi"}]}, "role 'wizard'"),
    ({"id": 2, "prompt": "   "}, "prompt is empty"),
    ('{"id": 2, "prompt": "\\ud800"}', "lone surrogate"),
    ({"id": 2, "prompt": "Hi", "rewards": [{"name": "no_such_reward"}]}, "no_such_reward"),
    ({"id": 2, "prompt": "Hi", "rewards": [{"name": "keywords", "keywords": "dog"}]}, "keywords"),
    ({"id": 2, "prompt": "Hi", "rewards": {"name": "keywords"}}, "list of reward specs"),
])
def test_a_bad_row_is_named_by_file_and_line(tmp_path, bad, needle):
    path = write(tmp_path / "in.jsonl", [GOOD, "", bad])  # the blank line 2 is skipped, the bad row is line 3
    with pytest.raises(BatchInputError) as info:
        read_rows(path)
    assert "in.jsonl:3" in str(info.value) and needle in str(info.value), str(info.value)


def test_rows_with_the_same_rewards_are_chunked_together(tmp_path):
    dog = [{"name": "keywords", "keywords": ["dog"]}]
    path = write(tmp_path / "in.jsonl", [{"id": i, "prompt": f"p{i}", **({"rewards": dog} if i % 2 else {})}
                                         for i in range(7)])
    rows = read_rows(path)
    assert [[r.id for r in c] for c in chunks(rows, 3)] == [[0, 2, 4], [6], [1, 3, 5]]


def test_local_run_equals_single_calls_and_writes_every_field(tmp_path, tiny_lm, vowels):
    prompts = ["Hello there", "Tell me a story", "Why is the sky blue?", "Name a fruit"]
    rows = [{"id": i, "prompt": p} for i, p in enumerate(prompts)]
    rows[2]["rewards"] = [{"name": "keywords", "keywords": ["blue"], "weight": 2.0}]
    rows.append({"id": "chat", "messages": [{"role": "system", "content": "Be brief."},
                                            {"role": "user", "content": "Say hi"}]})
    out = tmp_path / "out.jsonl"
    deal = DeAL(tiny_lm, rewards=Keywords(["the"]), **SETTINGS)
    report = run_batch(write(tmp_path / "in.jsonl", rows), out, deal=deal, batch_size=8, progress=False)
    assert (report.written, report.errors, report.skipped) == (5, 0, 0)
    got = {r["id"]: r for r in lines(out)}
    assert set(got) == {0, 1, 2, 3, "chat"}
    for row in rows:
        rewards = rewards_from_json(row["rewards"]) if "rewards" in row else None
        alone = deal.generate(row.get("prompt") or row["messages"], rewards=rewards)
        result = got[row["id"]]
        assert result["text"] == alone.text and result["finish_reason"] == alone.finish_reason
        assert result["rewards"] == pytest.approx(alone.rewards) and set(result["rewards"]) == set(alone.rewards)
        assert result["usage"]["completion_tokens"] == len(alone.token_ids)
    assert got[0]["stats"]["batch_rows"] == 4 and got[2]["stats"]["batch_rows"] == 1  # one search per rewards
    assert report.completion_tokens == sum(r["usage"]["completion_tokens"] for r in got.values())


def test_a_failing_row_is_written_with_its_error_and_its_chunk_goes_on(tmp_path, tiny_lm):
    too_long = " ".join(["word"] * 400)  # the tiny model's context window is 256 tokens
    rows = [{"id": 1, "prompt": "Hello there"}, {"id": 2, "prompt": too_long}, {"id": 3, "prompt": "Name a fruit"}]
    out = tmp_path / "out.jsonl"
    deal = DeAL(tiny_lm, **SETTINGS)
    report = run_batch(write(tmp_path / "in.jsonl", rows), out, deal=deal, progress=False)
    assert (report.written, report.errors) == (3, 1)
    got = {r["id"]: r for r in lines(out)}
    assert got[2]["error_type"] == "ContextLengthError" and "context window" in got[2]["error"]
    assert "text" not in got[2]
    for i in (1, 3):
        assert got[i]["text"] == deal.generate(rows[i - 1]["prompt"]).text

    # a rerun skips everything (errors included); --retry-errors runs the error rows again, here with truncation
    assert run_batch(tmp_path / "in.jsonl", out, deal=deal, progress=False).written == 0
    again = run_batch(tmp_path / "in.jsonl", out, deal=DeAL(tiny_lm, truncate_prompt=True, **SETTINGS),
                      retry_errors=True, progress=False)
    assert (again.written, again.errors, again.skipped) == (1, 0, 2)
    final = lines(out)
    assert sorted(r["id"] for r in final) == [1, 2, 3] and all("error" not in r for r in final)


def test_a_rerun_resumes_after_a_killed_job(tmp_path, tiny_lm):
    rows = [{"id": f"r{i}", "prompt": p} for i, p in enumerate(["Hello", "Tell me a story", "Name a fruit"])]
    src, out = write(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl"
    deal = DeAL(tiny_lm, **SETTINGS)
    run_batch(src, out, deal=deal, batch_size=1, progress=False)
    complete = out.read_text()
    first, second, _ = complete.splitlines()
    out.write_text(f"{first}\n{second}\n" + '{"id": "r2", "te')  # killed while writing the third row
    assert finished_ids(out) == {'"r0"', '"r1"'} and out.read_text() == f"{first}\n{second}\n"
    report = run_batch(src, out, deal=deal, batch_size=1, progress=False)
    assert (report.written, report.skipped) == (1, 2)
    strip = [{k: v for k, v in r.items() if k != "stats"} for r in lines(out)]
    assert strip == [{k: v for k, v in json.loads(line).items() if k != "stats"} for line in complete.splitlines()]


def test_a_broken_output_line_in_the_middle_is_an_error(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text('{"id": 1, "text": "a"}\nnot json\n{"id": 2, "text": "b"}\n')
    with pytest.raises(BatchInputError, match=r"out.jsonl:2 is not a result row"):
        finished_ids(out)


def test_bad_settings_and_options_fail_before_any_work(tmp_path, tiny_lm):
    src = write(tmp_path / "in.jsonl", [GOOD])
    with pytest.raises(ConfigError, match="top_k"):
        run_batch(src, tmp_path / "out.jsonl", deal=DeAL(tiny_lm), settings={"top_k": 0}, progress=False)
    with pytest.raises(ConfigError, match="ray=True"):
        run_batch(src, tmp_path / "out.jsonl", deal=DeAL(tiny_lm), replicas=2, progress=False)
    with pytest.raises(BatchInputError, match="does not exist"):
        run_batch(tmp_path / "missing.jsonl", tmp_path / "out.jsonl", deal=DeAL(tiny_lm), progress=False)
    assert not (tmp_path / "out.jsonl").exists()


def deal_cli(*args: str, cwd, pre: str = "") -> subprocess.CompletedProcess:
    code = f"import sys; {pre}from deal_core.cli import main; main(sys.argv[1:])"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.mark.slow
@pytest.mark.parametrize(("args", "pre", "needle"), [
    (["batch", "in.jsonl", "out.jsonl"], "", "in.jsonl:2 (id 'b'): message 0 role 'wizard'"),
    (["batch", "good.jsonl", "out.jsonl", "--replicas", "2"], "", "are for Ray runs: add --ray"),
    # without Ray installed (here: hidden from imports), deal_core still imports and --ray names the extra
    (["batch", "good.jsonl", "out.jsonl", "--ray"], "sys.modules['ray'] = None; ", "pip install 'deal-align[ray]'"),
    (["serve", "--ray"], "sys.modules['ray'] = None; ", "pip install 'deal-align[ray]'"),
    (["serve", "--replicas", "2"], "", "--replicas is for Ray Serve: add --ray"),
])
def test_cli_errors_are_one_line(tmp_path, args, pre, needle):
    wizard = {"id": "b", "messages": [{"role": "wizard", "content": "Hi"}]}
    write(tmp_path / "in.jsonl", [{"id": "a", "prompt": "Hi"}, wizard])
    write(tmp_path / "good.jsonl", [GOOD])
    proc = deal_cli(*args, cwd=tmp_path, pre=pre)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert needle in proc.stderr, proc.stderr
    assert not (tmp_path / "out.jsonl").exists()
