"""Reward specs, patterns and schemas are untrusted input: a hostile one costs its own caller a typed error, never
remote code, a network request, or the other callers' time (issue 13)."""

from __future__ import annotations

import json
import sys

import pytest

from deal_core.errors import RewardError, RewardSpecError
from deal_core.rewards import RewardModel, parse_reward_spec, reward_from_spec, rewards_from_json

# -- 1. remote code: only Python code may enable it ---------------------------------------------------------------

EVIL = """
import pathlib
pathlib.Path({marker!r}).write_text("remote code ran")
raise ImportError("the marker is written; nothing else to see")
"""


@pytest.fixture
def hostile_model_dir(tmp_path, monkeypatch):
    """A directory whose config.json maps the Auto classes to a .py file that writes a marker file on import; a real
    tokenizer beside it, so that loading gets as far as the model class."""
    import shutil

    import transformers.dynamic_module_utils as dyn

    from deal_core.model import embedded_model_dir

    monkeypatch.setattr(dyn, "HF_MODULES_CACHE", str(tmp_path / "modules"))  # keep copied code out of ~/.cache
    monkeypatch.setattr(sys, "path", list(sys.path))
    model_dir, marker = tmp_path / "evil-model", tmp_path / "marker.txt"
    model_dir.mkdir()
    auto = {k: "evil.Evil" for k in ("AutoConfig", "AutoModelForSequenceClassification")}
    (model_dir / "config.json").write_text(json.dumps({"model_type": "evil", "auto_map": auto}))
    (model_dir / "evil.py").write_text(EVIL.format(marker=str(marker)))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(embedded_model_dir() / name, model_dir / name)
    return model_dir, marker


def test_specs_cannot_enable_remote_code(hostile_model_dir):
    model_dir, marker = hostile_model_dir
    spec = {"name": "reward_model", "model": str(model_dir), "trust_remote_code": True}
    with pytest.raises(RewardSpecError, match="trust_remote_code can only be set in Python code"):
        reward_from_spec(spec)
    with pytest.raises(RewardSpecError, match="trust_remote_code"):
        rewards_from_json([{"name": "keywords", "keywords": ["a"]}, spec])
    # what a spec can build never runs the file either: loading refuses the auto_map
    for reward in (reward_from_spec({"name": "reward_model", "model": str(model_dir)}).reward,
                   parse_reward_spec(f"reward_model={model_dir}").reward):
        with pytest.raises(RewardError, match="contains custom code"):
            reward.score("p", ["x"])
    assert not marker.exists()
    # spec() never writes the flag out, so a round trip cannot carry it
    trusted = RewardModel(str(model_dir), trust_remote_code=True)
    assert "trust_remote_code" not in trusted.spec()
    assert reward_from_spec(trusted.spec()).reward.trust_remote_code is False
    assert not marker.exists()


def test_the_hostile_directory_is_real_python_code_may_still_opt_in(hostile_model_dir):
    """Control for the test above: the same directory does run its code when Python code asks for it."""
    model_dir, marker = hostile_model_dir
    with pytest.raises(RewardError):
        RewardModel(str(model_dir), trust_remote_code=True).score("p", ["x"])
    assert marker.read_text() == "remote code ran"


# -- 4. nothing is downloaded unless the user opts in ---------------------------------------------------------------

def test_an_uncached_model_id_fails_fast_and_says_how_to_opt_in(monkeypatch):
    import time

    from deal_core.errors import ModelLoadError
    from deal_core.model import downloads_allowed, load_model

    monkeypatch.delenv("DEAL_ALLOW_DOWNLOAD", raising=False)
    start = time.perf_counter()
    with pytest.raises(ModelLoadError, match=r"allow_download=True \(or set DEAL_ALLOW_DOWNLOAD=1\)"):
        load_model("deal-tests/no-such-model")
    with pytest.raises(RewardError, match="downloads are off"):
        reward_from_spec({"name": "reward_model", "model": "deal-tests/no-such-classifier"}).reward.score("p", ["x"])
    elapsed = time.perf_counter() - start
    assert elapsed < 5, f"took {elapsed:.1f}s: something retried the Hub"
    with pytest.raises(RewardSpecError, match="allow_download can only be set in Python code"):
        reward_from_spec({"name": "reward_model", "model": "x/y", "allow_download": True})
    assert not downloads_allowed() and downloads_allowed(True)
    monkeypatch.setenv("DEAL_ALLOW_DOWNLOAD", "1")
    assert downloads_allowed() and not downloads_allowed(False)
