"""What the LM proposes at one position: the greedy continuation token and the step's candidate tokens."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from deal_core.config import DeALConfig


@dataclass(frozen=True)
class Proposal:
    tokens: list[int]  # greedy mode: the top_k tokens, most likely first
    logps: list[float]  # the model's log-probabilities of `tokens`
    dist: torch.Tensor | None = None  # sampling mode: full log-probabilities, candidates drawn on demand

    @property
    def greedy(self) -> int:
        return self.tokens[0]

    @property
    def greedy_logp(self) -> float:
        return self.logps[0]


class Proposer:
    """Turns logits into `Proposal`s and proposals into a step's candidates (top-k, or sampled with top-p)."""

    def __init__(self, config: DeALConfig, device: torch.device):
        self.k = config.top_k
        self.sample = config.sample
        self.temperature = config.temperature
        self.top_p = config.top_p
        self.generator = None
        if self.sample:
            self.generator = torch.Generator(device=device)
            if config.seed is not None:
                self.generator.manual_seed(config.seed)
            else:
                self.generator.seed()

    def propose(self, logits: torch.Tensor) -> list[Proposal]:
        logp = torch.log_softmax(logits.float(), dim=-1)
        if not self.sample:
            values, indices = logp.topk(self.k, dim=-1)
            return [Proposal(t, v) for t, v in zip(indices.tolist(), values.tolist())]
        values, indices = logp.max(dim=-1)
        return [Proposal([t], [v], dist=row) for t, v, row in zip(indices.tolist(), values.tolist(), logp)]

    def candidates(self, proposal: Proposal) -> list[tuple[int, float]]:
        """(token, log-prob) pairs in rank order; the search breaks score ties by this order."""
        if proposal.dist is None:
            return list(zip(proposal.tokens, proposal.logps))
        probs = torch.softmax(proposal.dist / self.temperature, dim=-1)
        sorted_probs, order = probs.sort(descending=True)
        keep = int((sorted_probs.cumsum(-1) - sorted_probs < self.top_p).sum().clamp(min=1))
        nucleus = sorted_probs[:keep]
        drawn = torch.multinomial(nucleus, min(self.k, keep), replacement=False, generator=self.generator)
        tokens = order[drawn].tolist()
        return [(t, float(proposal.dist[t])) for t in tokens]
