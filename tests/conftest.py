"""Shared fixtures: the real embedded model, and a tiny random-weight Llama for fast unit tests."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from deal_core import DeAL, load_model
from deal_core.bench.data import PACKAGED_DATA
from deal_core.model import LanguageModel, embedded_model_dir
from deal_core.rewards import Reward

DATA_DIR = PACKAGED_DATA  # the evaluation data shipped inside the package
# The suite was written against the embedded model on transformers (expected texts, torch-level checks); "auto" now
# runs it on llama.cpp, so the suite (and the CLIs it starts) asks for transformers unless the caller chose an engine.
# tests/unit/test_engine_choice.py checks what "auto" picks.
os.environ.setdefault("DEAL_ENGINE", "transformers")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name: str) -> Any:
    """An example script (examples/NAME.py) as a module, so tests check what the examples build."""
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def embedded_lm() -> LanguageModel:
    return load_model(engine="transformers")


LLAMACPP_OPT_IN = "llama-cpp-python is not installed: `make` builds it unless GGUF=0 (the `gguf` extra)"


@pytest.fixture(scope="session")
def embedded_llamacpp():
    """The embedded GGUF file on the llama.cpp engine (`make` compiles it unless GGUF=0)."""
    pytest.importorskip("llama_cpp", reason=LLAMACPP_OPT_IN)
    return load_model(engine="llamacpp")


def _tiny_llama(positions: int) -> LanguageModel:
    """Two-layer Llama with random weights and the embedded model's tokenizer; peaked logits, so no near-ties."""
    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir())
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=positions, initializer_range=0.5,
        tie_word_embeddings=True, bos_token_id=1, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    return load_model(model, tokenizer=tokenizer)


@pytest.fixture(scope="session")
def tiny_lm() -> LanguageModel:
    return _tiny_llama(256)


@pytest.fixture(scope="session")
def tiny_long_lm() -> LanguageModel:
    """The same tiny model with a 1024-token window: room for tool descriptions."""
    return _tiny_llama(1024)


@pytest.fixture
def tiny(tiny_lm: LanguageModel) -> DeAL:
    return DeAL(tiny_lm, max_new_tokens=24)


class VowelShare(Reward):
    """Share of vowels among letters: a cheap, bounded, text-sensitive reward that makes random models choose."""

    kind: ClassVar[str] = ""

    def _score(self, prompts: Sequence[str], texts: Sequence[str], is_final: Sequence[bool]) -> list[float]:
        out = []
        for t in texts:
            letters = [c for c in t.lower() if c.isalpha()]
            out.append(sum(c in "aeiou" for c in letters) / len(letters) if letters else 0.0)
        return out


@pytest.fixture
def vowels() -> VowelShare:
    return VowelShare()


class Recorder:
    """Wraps a `DeAL` and records what each entry point was called with."""

    def __init__(self, deal):
        self.deal, self.calls = deal, []

    def __getattr__(self, name):
        method = getattr(self.deal, name)
        if not callable(method):
            return method

        def record(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            return method(*args, **kwargs)

        return record


REAL_MODEL_FIXTURES = {"embedded_lm"}


def pytest_collection_modifyitems(config, items):
    """Every test that loads the real embedded model is slow, marked or not: `make test-fast` never runs one."""
    for item in items:
        if REAL_MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
