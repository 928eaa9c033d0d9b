"""The proposer on numpy, for the llama.cpp engine: next-token logits (a float32 array, one row per sequence) →
candidates, without torch. The rules of backends/proposer.py, in the same order:

  GrammarMask    the output format's allowed tokens (an llguidance bitmask per row); none allowed: ConstraintError
  TopK           the k likeliest tokens over the log-softmax (float32, as torch computes it)

Ties: candidates are ordered by logit, then by the lower token id (torch's `topk` leaves tie order unspecified;
both give the same candidates where no two logits are equal). Sampling (`Nucleus`, torch.Generator draws) and
repetition_penalty / no_repeat_ngram_size (transformers' processors) run on the torch `LogitsProposer`:
`proposer()` imports torch only for those settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deal_core.backends.base import Proposal, Proposer
from deal_core.constraint import ConstraintError, allowed_tokens


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log-softmax over the last axis, in float32 (a masked -inf stays -inf)."""
    x = np.asarray(logits, dtype=np.float32)
    shifted = x - x.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True, dtype=np.float32))


def logsumexp(x: np.ndarray) -> np.ndarray:
    top = x.max(-1, keepdims=True)
    return (top + np.log(np.exp(x - top).sum(-1, keepdims=True, dtype=np.float32)))[..., 0]


def answer_logodds(scores: Any, yes: Sequence[int], no: Sequence[int]) -> list[float]:
    """log P(any of `yes`) − log P(any of `no`) per row of next-token logits."""
    logp = log_softmax(scores)
    return (logsumexp(logp[:, list(yes)]) - logsumexp(logp[:, list(no)])).tolist()


def token_logprobs(scores: Any, tokens: Sequence[int]) -> list[float]:
    """log P(tokens[i]) under row i of next-token logits."""
    logp = log_softmax(scores)
    return logp[np.arange(len(tokens)), list(tokens)].tolist()


def grammar_mask(logits: np.ndarray, allowed: Sequence[Any]) -> np.ndarray:
    """A copy of `logits` with the tokens each row's format forbids at -inf (rows without a format untouched)."""
    logits = logits.copy()
    for i, bits in enumerate(allowed):
        if bits is not None:
            ok = allowed_tokens(bits, logits.shape[-1])
            if not ok.any():
                raise ConstraintError("the output format allows no next token (an unsatisfiable schema?)")
            logits[i, ~ok] = -np.inf
    return logits


def top_k(logits: np.ndarray, k: int) -> list[list[int]]:
    """Per row, the ids of the k highest finite logits, highest first; equal logits: lower id first."""
    k = min(k, logits.shape[-1])
    if k == 1:  # argmax: the first (lowest) id of the maximum
        best = logits.argmax(-1)
        return [[int(t)] if np.isfinite(logits[i, t]) else [] for i, t in enumerate(best)]
    part = np.argpartition(-logits, k - 1, axis=-1)[:, :k]
    out = []
    for row, picked in zip(logits, part):
        kth = row[picked].min()
        ids = np.flatnonzero(row >= kth) if kth > -np.inf else np.flatnonzero(np.isfinite(row))
        ids = ids[np.lexsort((ids, -row[ids]))][:k]
        out.append(ids.tolist())
    return out


class NumpyProposer:
    """The grammar mask, then the top-k of the log-softmax (the `Proposer` protocol on numpy logits)."""

    rules = False  # no history rules here: those settings get the torch proposer

    def __init__(self, k: int):
        self.k = k

    def propose(self, scores: Any, rows: Sequence[int] | None = None, allowed: Sequence[Any] | None = None,
                histories: Sequence[Sequence[int]] | None = None) -> list[Proposal]:
        logits = np.asarray(scores if rows is None else scores[list(rows)], dtype=np.float32)
        if allowed is not None and any(a is not None for a in allowed):
            logits = grammar_mask(logits, allowed)
        logp = log_softmax(logits)
        return [Proposal(ids, logp[i, ids].tolist()) for i, ids in enumerate(top_k(logits, self.k))]

    def candidates(self, proposal: Proposal) -> list[tuple[int, float]]:
        return list(zip(proposal.tokens, proposal.logps))


class TorchFallback:
    """The torch `LogitsProposer` on numpy logits: sampling and history rules (torch imported on construction)."""

    def __init__(self, *args: Any):
        from deal_core.backends.proposer import LogitsProposer

        self.torch_proposer = LogitsProposer(*args)
        self.rules = self.torch_proposer.rules

    def propose(self, scores: Any, rows: Sequence[int] | None = None, allowed: Sequence[Any] | None = None,
                histories: Sequence[Sequence[int]] | None = None) -> list[Proposal]:
        import torch

        logits = np.ascontiguousarray(scores if rows is None else scores[list(rows)], dtype=np.float32)
        return self.torch_proposer.propose(torch.from_numpy(logits), None, allowed, histories)

    def candidates(self, proposal: Proposal) -> list[tuple[int, float]]:
        return self.torch_proposer.candidates(proposal)


def proposer(top_k: int, sample: bool = False, temperature: float = 1.0, top_p: float = 1.0,
             seed: int | None = None, repetition_penalty: float = 1.0, no_repeat_ngram_size: int = 0) -> Proposer:
    """The numpy proposer for greedy / top-k without history rules; the torch one (on the CPU) otherwise."""
    if not sample and repetition_penalty == 1.0 and not no_repeat_ngram_size:
        return NumpyProposer(top_k)
    return TorchFallback(top_k, sample, temperature, top_p, seed, None, repetition_penalty, no_repeat_ngram_size)
