"""`trace=True`: what each step considered — every candidate's token, lookahead, rewards, score and fate."""

from __future__ import annotations

from typing import TYPE_CHECKING

from deal_core.result import CandidateTrace, StepTrace
from deal_core.search.state import Candidate, Row

if TYPE_CHECKING:
    from deal_core.search.search import DeALSearch


def _candidate(search: DeALSearch, c: Candidate, won: bool) -> CandidateTrace:
    decode, scored = search.lm.decode, c.branch is not None and not c.skipped
    return CandidateTrace(
        token=decode([c.token], keep_special=True),
        lookahead=decode(c.branch.tokens[1: search.config.lookahead + 1], keep_special=True) if c.branch else "",
        logprob=c.logp,
        rewards=c.components,
        score=c.score if scored else None,
        status="won" if won else "lost" if scored else "pruned",
    )


def record(search: DeALSearch, rows: list[Row], candidates: list[list[Candidate]],
           winners: dict[int, list[Candidate]], step: int) -> None:
    """Append this step (the prompt's `step`-th) to its trace."""
    won = {id(c) for chosen in winners.values() for c in chosen}
    for r, cands in enumerate(candidates):
        row = rows[r]
        search.traces[row.prompt].append(StepTrace(
            step=step, beam=r, prefix=search.lm.decode(row.tokens),
            candidates=[_candidate(search, c, id(c) in won) for c in cands]))
