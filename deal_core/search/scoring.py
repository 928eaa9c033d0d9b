"""Scoring a step's candidates: each rolled-out text is decoded, cut at its stop strings and scored by its prompt's
rewards (memoised, cheap rewards before expensive ones: `scorer.Scorer`), giving
`log P(prefix + candidate) + λ · reward`."""

from __future__ import annotations

from deal_core.backends.base import Backend
from deal_core.errors import RewardError
from deal_core.objective import objective
from deal_core.result import SearchStats
from deal_core.search.state import Candidate, Job, Row
from deal_core.stops import cut_at_stop


class CandidateScoring:
    """Scores candidates of a search's rows: their texts (decoded with `lm`), rewards and objective. `jobs` is the
    search's list of prompts (shared: it grows as prompts are admitted)."""

    def __init__(self, lm: Backend, jobs: list[Job], lookahead: int, reward_weight: float, stats: SearchStats):
        self.lm, self.jobs, self.stats = lm, jobs, stats
        self.lookahead, self.reward_weight = lookahead, reward_weight

    def texts(self, rows: list[Row], cands: list[Candidate]) -> None:
        """Each candidate's text to score (committed tokens + candidate + lookahead, within its budget, cut at an
        EOS and at its stop strings), whether it is final, and its tokens' mean log-probability."""
        eos = self.lm.eos_token_ids
        bodies = []
        for c in cands:
            row, job = rows[c.row], self.jobs[rows[c.row].prompt]
            ext = c.branch.tokens[:min(self.lookahead + 1, job.config.max_new_tokens - len(row.tokens))]
            ended = next((j for j, t in enumerate(ext) if t in eos), None)
            c.final = ended is not None or len(row.tokens) + len(ext) >= job.config.max_new_tokens
            bodies.append(row.tokens + (ext if ended is None else ext[:ended]))
            scored = len(ext) if ended is None else ended + 1  # an EOS that ends the text counts
            c.mean_logp = (row.logp + sum(c.branch.logps[:scored])) / (len(row.tokens) + scored)
        for c, text in zip(cands, self.lm.decode_batch(bodies)):
            c.text, hit = cut_at_stop(text, self.jobs[rows[c.row].prompt].config.stop)
            c.final = c.final or hit

    def score(self, rows: list[Row], cands: list[Candidate],
              threshold: dict[int, float] | None) -> dict[int, RewardError]:
        """Score `cands` by their prompts' rewards (candidates of prompts that share a reward sum together). With a
        `threshold` per prompt, expensive rewards are skipped for candidates the cheap ones already rule out.
        Returns the prompts whose rewards failed, with the error (their candidates stay unscored)."""
        failed: dict[int, RewardError] = {}
        if not cands:
            return failed
        self.texts(rows, cands)
        weight = self.reward_weight
        groups: dict[int, list[Candidate]] = {}
        for c in cands:
            groups.setdefault(id(self.jobs[rows[c.row].prompt].scorer), []).append(c)
        for group in groups.values():
            def keep(i: int, reward_bound: float, group: list[Candidate] = group) -> bool:
                c = group[i]
                return objective(rows[c.row].logp + c.logp, reward_bound, weight) >= threshold[rows[c.row].prompt]

            scorer = self.jobs[rows[group[0].row].prompt].scorer
            try:
                results = scorer([(rows[c.row].prompt, c.text, c.final, c.mean_logp) for c in group],
                                 keep if threshold is not None and weight else None)
            except RewardError as exc:  # the prompts of this reward sum fail; the others go on
                failed.update({rows[c.row].prompt: exc for c in group})
                results = [None] * len(group)
            for c, scored in zip(group, results):
                if scored is None:  # cheap rewards already rule it out: expensive ones were skipped
                    c.skipped = True
                    self.stats.candidates_pruned += 1
                    continue
                # log P(prefix + candidate): in segment mode the committed lookahead tokens are the greedy rollout,
                # not a choice; counting their likelihood would favour bland, confident continuations.
                c.reward, c.components = scored
                c.score = objective(rows[c.row].logp + c.logp, c.reward, weight)
        return failed
