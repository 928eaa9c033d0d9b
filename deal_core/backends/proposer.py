"""The proposer, engine-neutral: next-token scores (any engine's logits as a torch tensor, one row per sequence) →
candidates. One small class per rule, applied in order like transformers' logits processors:

  HistoryRules   repetition_penalty / no_repeat_ngram_size (transformers' own processors, per row's token history)
  GrammarMask    the output format's allowed tokens (an llguidance bitmask per row)
  TopK           the k likeliest tokens                      } the selection: one of the two
  Nucleus        k tokens drawn from the tempered top-p set  }

`LogitsProposer` composes them (the `Proposer` protocol of base.py); a torch-based backend returns one from
`Backend.proposer(...)`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from transformers import LogitsProcessorList, NoRepeatNGramLogitsProcessor, RepetitionPenaltyLogitsProcessor

from deal_core.backends.base import Proposal
from deal_core.constraint import ConstraintError, allowed_tokens
from deal_core.errors import ConfigError


class HistoryRules:
    """repetition_penalty and no_repeat_ngram_size, applied per row to its history (prompt + response so far)."""

    def __init__(self, repetition_penalty: float, no_repeat_ngram_size: int, device: torch.device):
        self.device = device
        self.processors = LogitsProcessorList(
            ([RepetitionPenaltyLogitsProcessor(repetition_penalty)] if repetition_penalty != 1.0 else [])
            + ([NoRepeatNGramLogitsProcessor(no_repeat_ngram_size)] if no_repeat_ngram_size else []))

    def __bool__(self) -> bool:
        return bool(self.processors)

    def __call__(self, logits: torch.Tensor, histories: Sequence[Sequence[int]] | None) -> torch.Tensor:
        if histories is None:
            raise ValueError("repetition_penalty / no_repeat_ngram_size need each row's token history")
        logits = torch.cat([self.processors(torch.tensor([list(h)], device=self.device), logits[i: i + 1])
                            for i, h in enumerate(histories)])
        if not torch.isfinite(logits).any(-1).all():
            raise ConfigError("repetition_penalty / no_repeat_ngram_size left no token to choose from; relax them")
        return logits


class GrammarMask:
    """Tokens the output format forbids get -inf (rows without a format are left alone)."""

    def __call__(self, logits: torch.Tensor, allowed: Sequence[Any]) -> torch.Tensor:
        logits = logits.clone()
        for i, bits in enumerate(allowed):
            if bits is not None:
                ok = torch.from_numpy(allowed_tokens(bits, logits.shape[-1])).to(logits.device)
                if not ok.any():
                    raise ConstraintError("the output format allows no next token (an unsatisfiable schema?)")
                logits[i].masked_fill_(~ok, -torch.inf)
        return logits


class TopK:
    """The k likeliest tokens (fewer where the rest are forbidden)."""

    def __init__(self, k: int):
        self.k = k

    def propose(self, logp: torch.Tensor) -> list[Proposal]:
        values, indices = logp.topk(self.k, dim=-1)
        return [Proposal([t for t, v in zip(ts, vs) if v > -math.inf], [v for v in vs if v > -math.inf])
                for ts, vs in zip(indices.tolist(), values.tolist())]

    def candidates(self, proposal: Proposal) -> list[tuple[int, float]]:
        return list(zip(proposal.tokens, proposal.logps))


class Nucleus:
    """k candidates drawn without replacement from the top-p set of the tempered distribution (its own generator:
    a seed gives the same draws); the greedy token leads the lookahead."""

    def __init__(self, k: int, temperature: float, top_p: float, seed: int | None, device: torch.device):
        self.k, self.temperature, self.top_p = k, temperature, top_p
        self.generator = torch.Generator(device=device)
        if seed is not None:
            self.generator.manual_seed(seed)
        else:
            self.generator.seed()

    def propose(self, logp: torch.Tensor) -> list[Proposal]:
        values, indices = logp.max(dim=-1)
        return [Proposal([t], [v], dist=row) for t, v, row in zip(indices.tolist(), values.tolist(), logp)]

    def candidates(self, proposal: Proposal) -> list[tuple[int, float]]:
        probs = torch.softmax(proposal.dist.double() / self.temperature, dim=-1)  # float64: small temperatures
        sorted_probs, order = probs.sort(descending=True)
        keep = int((sorted_probs.cumsum(-1) - sorted_probs < self.top_p).sum().clamp(min=1))
        keep = min(keep, int((sorted_probs > 0).sum().clamp(min=1)))  # masked tokens have probability 0
        drawn = torch.multinomial(sorted_probs[:keep], min(self.k, keep), replacement=False,
                                  generator=self.generator)
        return [(t, float(proposal.dist[t])) for t in order[drawn].tolist()]


class LogitsProposer:
    """History rules, then the grammar mask, then top-k or nucleus selection over the log-softmax."""

    def __init__(self, top_k: int, sample: bool = False, temperature: float = 1.0, top_p: float = 1.0,
                 seed: int | None = None, device: torch.device | None = None, repetition_penalty: float = 1.0,
                 no_repeat_ngram_size: int = 0):
        device = device or torch.device("cpu")
        self.rules = HistoryRules(repetition_penalty, no_repeat_ngram_size, device)
        self.mask = GrammarMask()
        self.select = Nucleus(top_k, temperature, top_p, seed, device) if sample else TopK(top_k)

    def propose(self, logits: torch.Tensor, rows: Sequence[int] | None = None, allowed: Sequence[Any] | None = None,
                histories: Sequence[Sequence[int]] | None = None) -> list[Proposal]:
        logits = (logits if rows is None else logits[list(rows)]).float()
        if self.rules:
            logits = self.rules(logits, histories)
        if allowed is not None and any(a is not None for a in allowed):
            logits = self.mask(logits, allowed)
        return self.select.propose(torch.log_softmax(logits, dim=-1))

    def candidates(self, proposal: Proposal) -> list[tuple[int, float]]:
        if proposal.dist is None:  # top-k: the proposal is the candidates
            return list(zip(proposal.tokens, proposal.logps))
        return self.select.candidates(proposal)


class TorchScored:
    """The verbs both torch-scored engines share (a mixin): a session holds the model's lock with autograd off, and
    the proposer runs on the engine's `device` (the CPU for an engine without one, llama.cpp's logits)."""

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        with self.lock, torch.inference_mode():
            yield

    def proposer(self, top_k: int, sample: bool = False, temperature: float = 1.0, top_p: float = 1.0,
                 seed: int | None = None, repetition_penalty: float = 1.0,
                 no_repeat_ngram_size: int = 0) -> LogitsProposer:
        return LogitsProposer(top_k, sample, temperature, top_p, seed, getattr(self, "device", None),
                              repetition_penalty, no_repeat_ngram_size)


def answer_logodds(scores: torch.Tensor, yes: Sequence[int], no: Sequence[int]) -> list[float]:
    """log P(any of `yes`) − log P(any of `no`) per row of next-token scores (any engine's logits as a tensor)."""
    logp = torch.log_softmax(scores.float(), -1)
    return (torch.logsumexp(logp[:, list(yes)], -1) - torch.logsumexp(logp[:, list(no)], -1)).tolist()
