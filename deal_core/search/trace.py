"""`trace=True`: what each step considered — every candidate's token, lookahead, rewards, score and fate."""

from __future__ import annotations

from deal_core.backends.base import Backend
from deal_core.result import CandidateTrace, StepTrace
from deal_core.search.state import Candidate, Row


def _candidate(lm: Backend, lookahead: int, c: Candidate, won: bool) -> CandidateTrace:
    decode, scored = lm.decode, c.branch is not None and not c.skipped
    return CandidateTrace(
        token=decode([c.token], keep_special=True),
        lookahead=decode(c.branch.tokens[1: lookahead + 1], keep_special=True) if c.branch else "",
        logprob=c.logp,
        rewards=c.components,
        score=c.score if scored else None,
        status="won" if won else "lost" if scored else "pruned",
    )


def record(lm: Backend, lookahead: int, rows: list[Row], candidates: list[list[Candidate]],
           winners: dict[int, list[Candidate]], step: int) -> list[tuple[int, StepTrace]]:
    """This step (the `step`-th of its prompt) as one `StepTrace` per row, each with its row's prompt."""
    won = {id(c) for chosen in winners.values() for c in chosen}
    out = []
    for r, cands in enumerate(candidates):
        row = rows[r]
        out.append((row.prompt, StepTrace(step=step, beam=r, prefix=lm.decode(row.tokens),
                                          candidates=[_candidate(lm, lookahead, c, id(c) in won) for c in cands])))
    return out
