"""`deal bench engines`: llama-cpp-python's own greedy is the reference row; every row reports ms/token × it and
hard / clean coverage, measured in one process."""

import json

import pytest

from tests.conftest import LLAMACPP_OPT_IN

pytestmark = pytest.mark.slow


def test_engines_bench_reports_every_row_against_llama_cpp_pythons_own_greedy(tmp_path, embedded_llamacpp):
    pytest.importorskip("llama_cpp", reason=LLAMACPP_OPT_IN)
    from deal_core.bench import engines

    out = tmp_path / "engines.json"
    report = engines.run(limit=1, max_new_tokens=6, json_out=str(out), engines=("llamacpp",), cold=False)
    modes = report["modes"]
    assert report["reference"] == engines.REFERENCE and modes[engines.REFERENCE]["x_reference"] == 1.0
    assert {engines.CHAT, *(f"{m} / llamacpp" for m in engines.MODES)} <= set(modes)
    for row in modes.values():
        assert row["ms_per_token_median"] > 0 and row["x_reference"] > 0
        assert 0 <= row["clean_all_concepts"] <= row["all_concepts"] <= 1
    assert json.loads(out.read_text())["modes"].keys() == modes.keys()
