"""The reward side of scoring: a `Scorer` scores (prompt, text, is_final, mean log-probability) items with one reward
sum, memoised within a call, cheap rewards before expensive ones."""

from __future__ import annotations

from collections.abc import Callable

from deal_core.result import SearchStats
from deal_core.rewards.base import RewardSum

ScoreItem = tuple[int, str, bool, float]  # (prompt index, text, is_final, the text's mean token log-probability)


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

    def _stage(self, index: int, keys: list[ScoreItem]) -> list[dict[str, float]]:
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

    def __call__(self, items: list[ScoreItem],
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
