"""Selection: the `beam_width` best scored candidates per prompt win; their first `commit` tokens are appended, and
rows whose answer ended (EOS, a stop string, the budget) leave the search as `Finished` answers."""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field

from deal_core.backends.base import Backend, Handle
from deal_core.config import DeALConfig
from deal_core.objective import finish_reason, objective
from deal_core.result import SearchStats
from deal_core.search.state import Branch, Candidate, Finished, Job, Row, State, StepUpdate, committed_constraint
from deal_core.stops import stopped


def thresholds(rows: list[Row], scored: list[Candidate], beam_width: int) -> dict[int, float]:
    """Per prompt, the beam_width-th best score found so far (-inf while fewer are known)."""
    by_prompt: dict[int, list[float]] = {}
    for c in scored:
        by_prompt.setdefault(rows[c.row].prompt, []).append(c.score)
    out = {}
    for row in rows:
        scores = sorted(by_prompt.get(row.prompt, []), reverse=True)
        out[row.prompt] = scores[beam_width - 1] if len(scores) >= beam_width else -math.inf
    return out


@dataclass
class Committed:
    """What a step's commit did: the update for the engine, and the sequences no row holds any more (to free)."""

    update: StepUpdate
    spent: list[Handle] = field(default_factory=list)


class Selection:
    """Winners of a step and their commit, for the prompts in `jobs` (the search's list, shared)."""

    def __init__(self, lm: Backend, jobs: list[Job], config: DeALConfig, stats: SearchStats):
        self.lm, self.jobs, self.config, self.stats = lm, jobs, config, stats

    def select(self, rows: list[Row], candidates: list[list[Candidate]],
               failed: Collection[int]) -> dict[int, list[Candidate]]:
        """The winners per prompt, best first (prompts in `failed`, whose rewards failed, get none)."""
        beam_width = self.config.beam_width
        by_prompt: dict[int, list[Candidate]] = {}
        for cands in candidates:
            for c in cands:
                if c.branch is not None and not c.skipped:
                    by_prompt.setdefault(rows[c.row].prompt, []).append(c)
        winners, last = {}, {}
        for prompt, cands in by_prompt.items():
            if prompt in failed:
                continue
            ranked = sorted(cands, key=lambda c: (-c.score, c.row, c.rank))
            last[prompt] = ranked[min(beam_width, len(ranked)) - 1].score
            if ranked[0].score == -math.inf:
                self.jobs[prompt].fallback = True  # every candidate vetoed: keep the likeliest, flagged
            winners[prompt] = ranked[:beam_width]
        self._count_needed(rows, candidates, last)
        return winners

    def _count_needed(self, rows: list[Row], candidates: list[list[Candidate]], last: dict[int, float]) -> None:
        """The profile: candidates no rollout order could have skipped (`last`: each prompt's worst winner)."""
        for cands in candidates:
            for c in cands:
                row = rows[c.row]
                if row.prompt in last:
                    job = self.jobs[row.prompt]
                    bound = job.reward_bound(row, c, job.config.max_new_tokens - len(row.tokens), self.config.lookahead)
                    self.stats.candidates_needed += objective(row.logp + c.logp, bound,
                                                              self.config.reward_weight) >= last[row.prompt]

    def stopped(self, prompt: int, tokens: list[int], new: int) -> bool:
        """Whether the newest `new` tokens completed a stop string (only a window of the text is decoded)."""
        return stopped(self.lm.decode, tokens, new, self.jobs[prompt].config.stop)

    def _advance(self, prompt: int, row: Row, c: Candidate, commit: int) -> Finished | Row:
        """Row `row` after winner `c` committed up to `commit` tokens: a Finished answer, or the row that goes on."""
        job, eos, branch = self.jobs[prompt], self.lm.eos_token_ids, c.branch
        n = min(commit, len(branch.tokens))
        step_tokens = branch.tokens[:n]
        ended = next((j for j, t in enumerate(step_tokens) if t in eos), None)
        tokens = row.tokens + (step_tokens if ended is None else step_tokens[:ended])
        logp = row.logp + sum(branch.logps[:n])
        hit = self.stopped(prompt, tokens, n)
        reason = finish_reason(ended is not None, hit) if ended is not None or hit or \
            len(tokens) >= job.config.max_new_tokens else None
        after = committed_constraint(branch, n, ended, eos)
        if reason:
            complete = after is None or after.accepting
            return Finished(tokens, logp, c.score, reason, job.fallback, complete,
                            after is not None and after.closed_early)
        tail = Branch(branch.tokens[n:], branch.logps[n:], branch.after[n:], branch.constraint)
        return Row(prompt, tokens, logp, branch.after[n - 1], tail, c.seq, after)

    def commit(self, state: State, candidates: list[list[Candidate]],
               winners: dict[int, list[Candidate]]) -> Committed:
        """Append each winner's first `commit` tokens (fewer where the budget ends); finished rows leave. A row that
        goes on keeps its winner's sequence (it holds the winner's branch); every other sequence of the step is
        spent (returned, for the search to free)."""
        rows, step = state.rows, self.config.commit
        new_rows, update = [], StepUpdate({}, {})
        for prompt, chosen in winners.items():
            n = min(step, self.jobs[prompt].config.max_new_tokens - len(rows[chosen[0].row].tokens))
            for c in chosen:
                out = self._advance(prompt, rows[c.row], c, n)
                if isinstance(out, Finished):
                    self.jobs[prompt].finished.append(out)
                else:
                    new_rows.append(out)
            update.tokens[prompt] = rows[chosen[0].row].tokens + chosen[0].branch.tokens[:n]
        live = {r.prompt for r in new_rows}
        for prompt in winners:
            if prompt not in live:
                update.finished[prompt] = max(self.jobs[prompt].finished, key=lambda f: f.score)
        kept = {id(row.seq) for row in new_rows}
        spent = {id(s): s for s in [row.seq for row in rows]
                 + [c.seq for cands in candidates for c in cands if c.seq is not None]}
        state.rows = new_rows
        return Committed(update, [s for key, s in spent.items() if key not in kept])
