"""What the search holds between and within steps: rows (a prompt's beam), branches (tokens after a committed
prefix), candidates, finished answers, and each prompt's own part of a shared search (`Job`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from deal_core.backends.base import Handle, Proposal
from deal_core.config import DeALConfig, shared_settings
from deal_core.constraint import Constraint
from deal_core.prompts import EncodedPrompt
from deal_core.rewards.base import RewardSum
from deal_core.search.scorer import Scorer


@dataclass
class Branch:
    """Tokens after a committed prefix. All but the last are in the branch's sequence; `after[j]` follows tokens[j]."""

    tokens: list[int]
    logps: list[float]
    after: list[Proposal] = field(default_factory=list)
    constraint: Constraint | None = None  # the output format's state after all of `tokens`


@dataclass
class Row:
    """One live search state: a prompt's committed response, what the LM proposes next, a greedy tail, and the
    engine's sequence holding prompt + `tokens` + all but the last of `tail.tokens`."""

    prompt: int
    tokens: list[int]
    logp: float
    proposal: Proposal
    tail: Branch
    seq: Handle
    constraint: Constraint | None = None  # the output format's state after `tokens`


@dataclass
class Candidate:
    row: int
    rank: int
    token: int
    logp: float
    branch: Branch | None = None
    seq: Handle | None = None  # the engine's sequence holding the branch (all but its last token)
    reward: float = 0.0
    components: dict[str, float] = field(default_factory=dict)
    score: float = -math.inf
    text: str = ""
    mean_logp: float = 0.0  # of the scored text's tokens (what `Fluency` reads)
    final: bool = False
    skipped: bool = False


@dataclass
class Finished:
    tokens: list[int]
    logp: float
    score: float
    reason: str
    fallback: bool
    complete: bool = True  # the output format (if any) is complete
    closed_early: bool = False  # ...because the budget made it close


@dataclass
class State:
    """The search between steps: its live rows (each with its own sequence in the engine)."""

    rows: list[Row]


@dataclass
class StepUpdate:
    """What a step committed: the best response so far per prompt (None where nothing changed)."""

    tokens: dict[int, list[int]]
    finished: dict[int, Finished]


@dataclass
class Job:
    """One prompt of a search and what is its own: budget and stop strings (its config), rewards, output format, and
    what its steps found (finished answers; whether every candidate was vetoed once)."""

    prompt: EncodedPrompt
    config: DeALConfig
    rewards: RewardSum
    constraint: Constraint | None
    scorer: Scorer
    reward_max: float
    tight: bool  # some reward bounds itself tighter than its range (`Reward.upper_bound`)
    stop_span: int  # stop strings are looked for in the text of this many newest tokens (0: none)
    finished: list[Finished] = field(default_factory=list)  # answers its rows ended with (one per row with beams)
    fallback: bool = False  # every candidate of some step was vetoed: the likeliest was kept, and the answer says so

    def reward_bound(self, row: Row, c: Candidate, remaining: int, lookahead: int) -> float:
        """The most the rewards can give candidate `c` of `row` (rewards like `Fluency` know a bound tighter than
        their range from the answer's likelihood so far; the lookahead scores at most `lookahead` more tokens)."""
        if not self.tight:
            return self.reward_max
        more = min(lookahead + 1, remaining) - 1
        return self.rewards.upper_bound(row.logp + c.logp, len(row.tokens) + 1, more)


SHARED = shared_settings()  # the settings every prompt of one search shares (declared in DeALConfig)


def shared_key(config: DeALConfig) -> tuple:
    """Requests whose configs agree on these settings can share one search (and its forward passes)."""
    return tuple(getattr(config, name) for name in SHARED)


# -- output-format bookkeeping: a branch's constraint follows its tokens -----------------------------------------
def advanced(constraint: Constraint | None, token: int, eos: frozenset[int]) -> Constraint | None:
    """A fork of `constraint` that has consumed `token`. End-of-sequence tokens are never fed to a constraint (the
    grammar allows them only where the output is complete, and a matcher cannot be rolled back over them)."""
    if constraint is None:
        return None
    out = constraint.fork()
    if token not in eos:
        out.consume(token)
    return out


def fed(tokens: list[int], eos: frozenset[int]) -> int:
    """How many of `tokens` a constraint has consumed (all but end-of-sequence tokens)."""
    return sum(t not in eos for t in tokens)


def committed_constraint(branch: Branch, n: int, ended: int | None, eos: frozenset[int]) -> Constraint | None:
    """The output format's state after a branch's first `n` tokens (cut at `ended`, an EOS): the branch's state
    rolled back over the rest."""
    if branch.constraint is None:
        return None
    after = branch.constraint.fork()
    after.rollback(fed(branch.tokens[n if ended is None else ended:], eos))
    return after
