"""Scoring a step's candidates: each rolled-out text is decoded, cut at its stop strings and scored by its prompt's
rewards (memoised, cheap rewards before expensive ones), giving `log P(prefix + candidate) + λ · reward`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from deal_core.errors import RewardError
from deal_core.result import SearchStats
from deal_core.rewards.base import RewardSum
from deal_core.search.state import Candidate, Row
from deal_core.streaming import cut_at_stop

if TYPE_CHECKING:
    from deal_core.search.search import DeALSearch


class Scorer:
    """Scores texts with the reward sum, once per distinct (prompt, text, is_final, mean token log-probability)
    within a call.

    Cheap rewards run first; expensive ones (classifiers, judges) only on texts that `keep(i, partial)` accepts,
    where `partial` is the cheap rewards' weighted sum plus the best the expensive ones could add.
    """

    def __init__(self, rewards: RewardSum, requests: list[str], stats: SearchStats):
        self.requests, self.stats = requests, stats
        terms = list(zip(rewards.labels, rewards.terms))
        self.stages = [stage for stage in (
            [(label, t) for label, t in terms if not t.reward.is_expensive],
            [(label, t) for label, t in terms if t.reward.is_expensive],
        ) if stage]
        self.stage_upper = [RewardSum(terms=[t for _, t in stage]).bounds()[1] for stage in self.stages]
        self.reads_logprobs = [any(t.reward.uses_logprobs for _, t in stage) for stage in self.stages]
        self.memo: dict[tuple[int, int, str, bool, float], dict[str, float]] = {}

    def _stage(self, index: int, keys: list[tuple[int, str, bool, float]]) -> list[dict[str, float]]:
        if not self.reads_logprobs[index]:  # the same text scores the same whatever its likelihood
            keys = [(p, t, f, 0.0) for p, t, f, _ in keys]
        missing = list(dict.fromkeys(k for k in keys if (index, *k) not in self.memo))
        if missing:
            prompts = [self.requests[p] for p, _, _, _ in missing]
            texts = [t for _, t, _, _ in missing]
            finals = [f for _, _, f, _ in missing]
            logprobs = [lp for _, _, _, lp in missing]
            columns = {label: term.reward.score(prompts, texts, finals, logprobs)
                       for label, term in self.stages[index]}
            self.stats.reward_calls += 1
            self.stats.texts_scored += len(missing)
            for i, key in enumerate(missing):
                self.memo[(index, *key)] = {label: values[i] for label, values in columns.items()}
        return [self.memo[(index, *k)] for k in keys]

    def __call__(self, items: list[tuple[int, str, bool, float]],
                 keep: Callable[[int, float], bool] | None = None) -> list[tuple[float, dict[str, float]] | None]:
        totals, components = [0.0] * len(items), [{} for _ in items]
        alive = list(range(len(items)))
        for index, stage in enumerate(self.stages):
            if index and keep is not None:
                still_possible = sum(self.stage_upper[index:])
                alive = [i for i in alive if keep(i, totals[i] + still_possible)]
            weights = {label: term.weight for label, term in stage}
            for i, values in zip(alive, self._stage(index, [items[i] for i in alive])):
                components[i].update(values)
                totals[i] += sum(weights[label] * v for label, v in values.items() if weights[label])
        kept = set(alive)
        return [(totals[i], components[i]) if i in kept else None for i in range(len(items))]


def texts(search: DeALSearch, rows: list[Row], cands: list[Candidate]) -> None:
    """Each candidate's text to score (committed tokens + candidate + lookahead, within its budget, cut at an EOS
    and at its stop strings), whether it is final, and its tokens' mean log-probability."""
    lookahead, eos = search.config.lookahead, search.lm.eos_token_ids
    bodies = []
    for c in cands:
        row, job = rows[c.row], search.jobs[rows[c.row].prompt]
        ext = c.branch.tokens[:min(lookahead + 1, job.config.max_new_tokens - len(row.tokens))]
        ended = next((j for j, t in enumerate(ext) if t in eos), None)
        c.final = ended is not None or len(row.tokens) + len(ext) >= job.config.max_new_tokens
        bodies.append(row.tokens + (ext if ended is None else ext[:ended]))
        scored = len(ext) if ended is None else ended + 1  # an EOS that ends the text counts
        c.mean_logp = (row.logp + sum(c.branch.logps[:scored])) / (len(row.tokens) + scored)
    for c, text in zip(cands, search.lm.decode_batch(bodies)):
        c.text, hit = cut_at_stop(text, search.jobs[rows[c.row].prompt].config.stop)
        c.final = c.final or hit


def score(search: DeALSearch, rows: list[Row], cands: list[Candidate], threshold: dict[int, float] | None) -> None:
    """Score `cands` by their prompts' rewards (candidates of prompts that share a reward sum together). With a
    `threshold` per prompt, expensive rewards are skipped for candidates the cheap ones already rule out."""
    if not cands:
        return
    texts(search, rows, cands)
    weight = search.config.reward_weight
    groups: dict[int, list[Candidate]] = {}
    for c in cands:
        groups.setdefault(id(search.jobs[rows[c.row].prompt].scorer), []).append(c)
    for group in groups.values():
        def keep(i: int, reward_bound: float, group: list[Candidate] = group) -> bool:
            c = group[i]
            return rows[c.row].logp + c.logp + weight * reward_bound >= threshold[rows[c.row].prompt]

        scorer = search.jobs[rows[group[0].row].prompt].scorer
        try:
            results = scorer([(rows[c.row].prompt, c.text, c.final, c.mean_logp) for c in group],
                             keep if threshold is not None and weight else None)
        except RewardError as exc:  # the prompts of this reward sum fail; the others go on
            search.errors.update({rows[c.row].prompt: exc for c in group})
            results = [None] * len(group)
        for c, scored in zip(group, results):
            if scored is None:  # cheap rewards already rule it out: expensive ones were skipped
                c.skipped = True
                search.stats.candidates_pruned += 1
                continue
            # log P(prefix + candidate): in segment mode the committed lookahead tokens are the greedy rollout,
            # not a choice; counting their likelihood would favour bland, confident continuations over the reward.
            c.reward, c.components = scored
            c.score = rows[c.row].logp + c.logp + weight * c.reward
