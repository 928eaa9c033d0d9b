"""Which engine runs the embedded model: "auto" picks llama.cpp where llama-cpp-python is installed and falls back to
transformers, without an error, where it is not; `engine=`/`$DEAL_ENGINE`/`--engine` choose explicitly."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from deal_core import DeAL, load_model
from deal_core import model as model_module
from deal_core.backends.loader import llamacpp_available
from deal_core.errors import ModelLoadError
from deal_core.model import embedded_gguf_path


def test_auto_runs_the_embedded_model_on_llama_cpp_when_it_is_installed(monkeypatch):
    monkeypatch.delenv("DEAL_ENGINE", raising=False)
    expected = embedded_gguf_path() if llamacpp_available() else None
    assert model_module._gguf_source(None, "auto") == expected
    assert model_module._gguf_source(None, "transformers") is None
    assert model_module._gguf_source(None, "llamacpp") == embedded_gguf_path()


def test_auto_falls_back_to_transformers_without_llama_cpp(monkeypatch, embedded_lm):
    monkeypatch.delenv("DEAL_ENGINE", raising=False)
    monkeypatch.setattr(model_module, "llamacpp_available", lambda: False)
    assert model_module._gguf_source(None, "auto") is None
    assert load_model() is embedded_lm  # the transformers engine, no error


def test_hugging_face_models_stay_on_transformers(monkeypatch):
    monkeypatch.delenv("DEAL_ENGINE", raising=False)
    assert model_module._gguf_source("HuggingFaceTB/SmolLM2-135M-Instruct", "auto") is None


@pytest.mark.slow
def test_the_default_engine_loads_the_embedded_model_on_llama_cpp(monkeypatch, embedded_llamacpp):
    monkeypatch.delenv("DEAL_ENGINE", raising=False)
    assert load_model() is embedded_llamacpp
    assert DeAL(max_new_tokens=4).lm is embedded_llamacpp


def test_an_unknown_engine_is_a_typed_error(monkeypatch):
    monkeypatch.setenv("DEAL_ENGINE", "vllm")
    with pytest.raises(ModelLoadError, match="one of auto, llamacpp, transformers"):
        load_model()


@pytest.mark.slow
def test_cli_engine_option_chooses_the_engine(embedded_llamacpp):
    pytest.importorskip("llama_cpp")
    cmd = [sys.executable, "-m", "deal_core.cli", "generate", "Name a colour.", "--greedy", "--max-new-tokens", "6",
           "--json"]
    out = subprocess.run([*cmd, "--engine", "llamacpp"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    expected = DeAL(embedded_llamacpp, max_new_tokens=6).greedy("Name a colour.").token_ids
    assert json.loads(out.stdout)["token_ids"] == expected
    bad = subprocess.run([*cmd, "--engine", "vllm"], capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and "engine='vllm' is not one of" in bad.stderr
