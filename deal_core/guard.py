"""Output guards: score a finished text with a reward and compare it to a threshold.

    guard = Guard(Safety(), threshold=0.5)
    score = guard.check("the user's request", "the output")
    if not guard.passes(score):
        raise guard.error(score)

LangChain's `RewardGuard` and LlamaIndex's `GuardedQueryEngine` are this guard plus their framework's policy
(raise, answer a fallback, retry); both raise `RewardGuardError`.
"""

from __future__ import annotations

from deal_core.errors import DeALError
from deal_core.rewards.base import RewardLike, RewardSum, Score, as_reward_sum


class RewardGuardError(DeALError, ValueError):
    """A guarded output scored below the threshold. `score`, `threshold` and `attempts` say by how much."""

    def __init__(self, score: Score, threshold: float, attempts: int = 1):
        self.score, self.threshold, self.attempts = score, threshold, attempts
        parts = ", ".join(f"{k}={v:.3f}" for k, v in score.components.items())
        super().__init__(f"output scored {score.total:.3f} < threshold {threshold} after {attempts} attempt(s) "
                         f"({parts}): {score.text[:80]!r}")


class Guard:
    """`reward` (one reward, a list or a weighted sum) and the `threshold` its total must reach."""

    def __init__(self, reward: RewardLike, threshold: float):
        self.reward: RewardSum = as_reward_sum(reward)
        self.threshold = threshold

    def check(self, prompt: str, text: str) -> Score:
        """The score of `text` as a response to `prompt`; `passes(score)` says whether it is good enough."""
        return self.reward(text, prompt)

    def passes(self, score: Score) -> bool:
        return score.total >= self.threshold

    def error(self, score: Score, attempts: int = 1) -> RewardGuardError:
        return RewardGuardError(score, self.threshold, attempts)

    def __repr__(self) -> str:
        return f"Guard({self.reward!r}, threshold={self.threshold})"
