"""Selection: the `beam_width` best scored candidates per prompt win; their first `commit` tokens are appended, and
rows whose answer ended (EOS, a stop string, the budget) leave the search as `Finished` answers."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from deal_core.search.state import Branch, Candidate, Finished, Row, State, StepUpdate, committed_constraint
from deal_core.streaming import cut_at_stop

if TYPE_CHECKING:
    from deal_core.search.search import DeALSearch


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


def select(search: DeALSearch, rows: list[Row], candidates: list[list[Candidate]]) -> dict[int, list[Candidate]]:
    """The winners per prompt, best first (prompts whose rewards failed get none)."""
    beam_width = search.config.beam_width
    by_prompt: dict[int, list[Candidate]] = {}
    for cands in candidates:
        for c in cands:
            if c.branch is not None and not c.skipped:
                by_prompt.setdefault(rows[c.row].prompt, []).append(c)
    winners, last = {}, {}
    for prompt, cands in by_prompt.items():
        if prompt in search.errors:
            continue
        ranked = sorted(cands, key=lambda c: (-c.score, c.row, c.rank))
        last[prompt] = ranked[min(beam_width, len(ranked)) - 1].score
        if ranked[0].score == -math.inf:
            search.fallback.add(prompt)  # every candidate vetoed: keep the likeliest, flagged
        winners[prompt] = ranked[:beam_width]
    for cands in candidates:  # the profile: candidates no rollout order could have skipped
        for c in cands:
            row = rows[c.row]
            if row.prompt in last:
                left = search.jobs[row.prompt].config.max_new_tokens - len(row.tokens)
                search.stats.candidates_needed += (row.logp + c.logp + search.config.reward_weight
                                                   * search.reward_bound(row, c, left) >= last[row.prompt])
    return winners


def stopped(search: DeALSearch, prompt: int, tokens: list[int], new: int) -> bool:
    """Whether the newest `new` tokens completed a stop string (only a window of the text is decoded)."""
    job = search.jobs[prompt]
    if not job.stop_span:
        return False
    return cut_at_stop(search.lm.decode(tokens[-(new + job.stop_span):]), job.config.stop)[1]


def _advance(search: DeALSearch, prompt: int, row: Row, c: Candidate, commit: int) -> Finished | Row:
    """Row `row` after winner `c` committed up to `commit` tokens: a Finished answer, or the row that goes on."""
    eos, budget, branch = search.lm.eos_token_ids, search.jobs[prompt].config.max_new_tokens, c.branch
    n = min(commit, len(branch.tokens))
    step_tokens = branch.tokens[:n]
    ended = next((j for j, t in enumerate(step_tokens) if t in eos), None)
    tokens = row.tokens + (step_tokens if ended is None else step_tokens[:ended])
    logp = row.logp + sum(branch.logps[:n])
    hit = stopped(search, prompt, tokens, n)
    reason = "eos" if ended is not None else "stop" if hit else ("length" if len(tokens) >= budget else None)
    after = committed_constraint(branch, n, ended, eos)
    if reason:
        complete = after is None or after.accepting
        return Finished(tokens, logp, c.score, reason, prompt in search.fallback, complete,
                        after is not None and after.closed_early)
    tail = Branch(branch.tokens[n:], branch.logps[n:], branch.after[n:], branch.constraint)
    return Row(prompt, tokens, logp, branch.after[n - 1], tail, c.seq, after)


def commit(search: DeALSearch, state: State, candidates: list[list[Candidate]],
           winners: dict[int, list[Candidate]]) -> StepUpdate:
    """Append each winner's first `commit` tokens (fewer where the budget ends); finished rows leave. A row that
    goes on keeps its winner's sequence (it holds the winner's branch); every other sequence of the step is
    dropped."""
    rows, step = state.rows, search.config.commit
    new_rows, update = [], StepUpdate({}, {})
    for prompt, chosen in winners.items():
        n = min(step, search.jobs[prompt].config.max_new_tokens - len(rows[chosen[0].row].tokens))
        for c in chosen:
            out = _advance(search, prompt, rows[c.row], c, n)
            if isinstance(out, Finished):
                search.finished[prompt].append(out)
            else:
                new_rows.append(out)
        update.tokens[prompt] = rows[chosen[0].row].tokens + chosen[0].branch.tokens[:n]
    live = {r.prompt for r in new_rows}
    for prompt in winners:
        if prompt not in live:
            update.finished[prompt] = max(search.finished[prompt], key=lambda f: f.score)
    kept = {id(row.seq) for row in new_rows}
    spent = {id(s): s for s in [row.seq for row in rows]
             + [c.seq for cands in candidates for c in cands if c.seq is not None]}
    search.lm.drop([s for key, s in spent.items() if key not in kept])
    state.rows = new_rows
    return update
