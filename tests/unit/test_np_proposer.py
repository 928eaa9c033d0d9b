"""The numpy proposer (llama.cpp's) against the torch `LogitsProposer`: the same top-k tokens and log-probs, the same
grammar mask (and its error when nothing is allowed), the same answer log-odds, on random arrays and on real
llama.cpp logits. Sampling and history rules fall back to the torch proposer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deal_core.backends import np_proposer
from deal_core.backends.np_proposer import NumpyProposer, TorchFallback
from deal_core.backends.proposer import LogitsProposer, answer_logodds
from deal_core.constraint import ConstraintError

VOCAB = 1000


def random_logits(rows: int, seed: int = 0, scale: float = 4.0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((rows, VOCAB)) * scale).astype(np.float32)


def random_masks(rows: int, seed: int = 1, density: float = 0.3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    bits = rng.random((rows, (VOCAB + 31) // 32 * 32)) < density
    return [np.packbits(b, bitorder="little").view(np.int32) for b in bits]


def assert_same_proposals(logits: np.ndarray, k: int, rows=None, allowed=None, atol: float = 1e-5) -> None:
    ours = NumpyProposer(k).propose(logits, rows, allowed)
    theirs = LogitsProposer(k).propose(torch.from_numpy(logits), rows, allowed)
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert a.tokens == b.tokens
        assert a.logps == pytest.approx(b.logps, abs=atol)


@pytest.mark.parametrize("k", [1, 4, 10])
def test_top_k_matches_the_torch_proposer_on_random_logits(k):
    logits = random_logits(6)
    assert_same_proposals(logits, k)
    assert_same_proposals(logits, k, rows=[4, 1])


@pytest.mark.parametrize("k", [1, 5])
def test_the_grammar_mask_matches_the_torch_proposer(k):
    logits = random_logits(4, seed=2)
    masks = random_masks(4)
    assert_same_proposals(logits, k, allowed=[masks[0], None, masks[2], masks[3]])
    assert_same_proposals(logits, k, rows=[3, 0], allowed=[masks[3], None])
    only_two = np.zeros(VOCAB, dtype=bool)
    only_two[[7, 900]] = True
    two = np.packbits(np.r_[only_two, np.zeros(24, bool)], bitorder="little").view(np.int32)
    proposal = NumpyProposer(5).propose(logits, [0], [two])[0]
    assert sorted(proposal.tokens) == [7, 900]  # fewer than k where the rest are forbidden
    assert_same_proposals(logits, 5, rows=[0], allowed=[two])


def test_nothing_allowed_raises_like_the_torch_proposer():
    logits, none = random_logits(2), np.zeros((VOCAB + 31) // 32, dtype=np.int32)
    with pytest.raises(ConstraintError, match="allows no next token"):
        NumpyProposer(3).propose(logits, None, [None, none])
    with pytest.raises(ConstraintError, match="allows no next token"):
        LogitsProposer(3).propose(torch.from_numpy(logits), None, [None, none])


def test_ties_go_to_the_lower_token_id():
    logits = np.zeros((1, 50), dtype=np.float32)
    logits[0, [40, 3, 17, 9]] = [2.0, 2.0, 1.0, 2.0]
    assert NumpyProposer(4).propose(logits)[0].tokens == [3, 9, 40, 17]
    assert NumpyProposer(1).propose(logits)[0].tokens == [3]


def test_answer_logodds_and_token_logprobs_match_torch():
    logits = random_logits(5, seed=3)
    yes, no = [3, 40, 700], [5, 999]
    assert np_proposer.answer_logodds(logits, yes, no) == pytest.approx(
        answer_logodds(torch.from_numpy(logits), yes, no), abs=1e-5)
    tokens = [1, 2, 3, 4, 5]
    expected = torch.log_softmax(torch.from_numpy(logits), -1)[range(5), tokens].tolist()
    assert np_proposer.token_logprobs(logits, tokens) == pytest.approx(expected, abs=1e-5)


def test_sampling_and_history_rules_fall_back_to_the_torch_proposer():
    logits = random_logits(3, seed=4)
    assert isinstance(np_proposer.proposer(4), NumpyProposer)
    sampler = np_proposer.proposer(4, sample=True, temperature=0.7, top_p=0.9, seed=11)
    reference = LogitsProposer(4, True, 0.7, 0.9, 11)
    for a, b in zip(sampler.propose(logits, [2, 0]), reference.propose(torch.from_numpy(logits), [2, 0])):
        assert sampler.candidates(a) == reference.candidates(b)
    penalized = np_proposer.proposer(3, repetition_penalty=1.3)
    assert isinstance(penalized, TorchFallback) and penalized.rules
    history = [[int(np.argmax(logits[0]))]]
    ours = penalized.propose(logits, [0], None, history)[0]
    theirs = LogitsProposer(3, repetition_penalty=1.3).propose(torch.from_numpy(logits), [0], None, history)[0]
    assert ours.tokens == theirs.tokens and ours.tokens[0] != history[0][0]


@pytest.mark.slow
def test_real_llama_cpp_logits_give_the_same_proposals_and_logodds(embedded_llamacpp):
    lm = embedded_llamacpp
    prompts = [lm.encode_text(t) for t in ("The dog runs in the park", "What is the capital of France?",
                                           "Once upon a time there was")]
    with lm.session():
        seqs, logits = lm.prefill(prompts)
        lm.drop(seqs)
    assert isinstance(logits, np.ndarray) and logits.dtype == np.float32
    top = np.sort(logits, -1)[:, ::-1][:, :11]
    assert (np.diff(top, axis=-1) < 0).all()  # no ties among the candidates compared
    # torch's float32 log-softmax is off by up to 1.7e-5 from the float64 one on these 49k-token rows (its sum of
    # exponentials), numpy's by 2.6e-6 (measured): the two agree within 2e-5, numpy within 5e-6 of float64
    exact = torch.log_softmax(torch.from_numpy(logits).double(), -1).numpy()
    assert np.abs(np_proposer.log_softmax(logits) - exact).max() < 5e-6
    for k in (1, 4, 10):
        assert_same_proposals(logits, k, atol=2e-5)
    masks = [np.packbits(np.r_[np.arange(lm.n_vocab) % 3 == 0, np.zeros(-lm.n_vocab % 32, bool)],
                         bitorder="little").view(np.int32), None, None]
    assert_same_proposals(logits, 5, allowed=masks, atol=2e-5)
    yes, no = lm.encode_text(" Yes", special_tokens=False), lm.encode_text(" No", special_tokens=False)
    assert lm.answer_logodds(logits, yes, no) == pytest.approx(
        answer_logodds(torch.from_numpy(logits), yes, no), abs=2e-5)
