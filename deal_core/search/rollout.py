"""Greedy rollouts: branches extended token by token, each forward pass yielded to the driver (interleave.py), which
feeds it together with other prompts' rows."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

from deal_core.backends.base import Backend, Handle, Proposer
from deal_core.result import SearchStats
from deal_core.search.interleave import PassRequest, PassScores
from deal_core.search.state import Branch


@dataclass
class RolloutPlan:
    """Branch i runs on sequence `seqs[i]` until it has `lengths[i]` tokens or an EOS; `left[i]` is the budget left
    before it (output constraints close the output as it runs out); `before[i]` its token history (None when no
    repetition penalty needs it)."""

    seqs: list[Handle]
    branches: list[Branch]
    lengths: list[int]
    left: list[int]
    before: list[list[int] | None]


class Rollout:
    """Extends branches greedily with `proposer`'s greedy token, counting rollout tokens in `stats`. `histories`:
    whether the proposer reads each row's token history (repetition penalties)."""

    def __init__(self, lm: Backend, proposer: Proposer, histories: bool, stats: SearchStats):
        self.lm, self.proposer, self.histories, self.stats = lm, proposer, histories, stats

    def run(self, plan: RolloutPlan) -> Generator[PassRequest, PassScores, None]:
        """One forward per token for the sequences that need one, until each branch is long enough or ended."""
        eos, branches = self.lm.eos_token_ids, plan.branches
        while True:
            need = [i for i, b in enumerate(branches) if len(b.tokens) < plan.lengths[i] and b.tokens[-1] not in eos]
            if not need:
                return
            got = yield PassRequest([plan.seqs[i] for i in need], [branches[i].tokens[-1] for i in need])
            self.stats.rollout_tokens += len(need)
            allowed = [branches[i].constraint.allowed(plan.left[i] - len(branches[i].tokens))
                       if branches[i].constraint is not None else None for i in need]
            histories = [plan.before[i] + branches[i].tokens for i in need] if self.histories else None
            for i, proposal in zip(need, self.proposer.propose(got.scores, got.rows, allowed, histories)):
                branch = branches[i]
                branch.after.append(proposal)
                branch.tokens.append(proposal.greedy)
                branch.logps.append(proposal.greedy_logp)
                if branch.constraint is not None and proposal.greedy not in eos:
                    branch.constraint.consume(proposal.greedy)
