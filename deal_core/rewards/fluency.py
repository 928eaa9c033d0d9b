"""Fluency: how likely the model itself finds the answer, per token."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

from deal_core.rewards.base import Reward


class Fluency(Reward):
    """The geometric mean of the model's token probabilities of the answer, exp(mean log P): 1 for an answer the
    model is sure of, near 0 for one it would never write. It counts the search's own log-probabilities (the
    committed tokens, the candidate and its lookahead; an EOS that ends the answer included), so it costs nothing
    to compute and is measured under the prompt the search decodes from (with the alignment instruction, if any).

    Paired with a keyword reward it asks for the words *in a sentence the model finds natural*: listing the words
    ("A barrel, a foot, a grape.") or looping on a phrase buys coverage with unlikely tokens, which lowers it.
    Outside a search, pass each text's mean token log-probability: `Fluency().score(prompt, text, logprobs=[-1.2])`.
    """

    kind: ClassVar[str] = "fluency"
    reads_logprobs: ClassVar[bool] = True

    def upper_bound(self, logprob: float, tokens: int, more: int) -> float:
        """The lookahead can only add tokens of log-probability ≤ 0, which pull the mean towards 0 at best when
        all `more` of them come: exp(logprob / (tokens + more)). Tight where the answer so far is long, which is
        what keeps pruning working with this reward (its global bound, 1, would let every candidate through)."""
        return math.exp(min(logprob, 0.0) / max(tokens + more, 1))

    def _score(self, prompts: Sequence[str], texts: Sequence[str], is_final: Sequence[bool],
               logprobs: Sequence[float] = ()) -> list[float]:
        return [math.exp(min(lp, 0.0)) for lp in logprobs]
