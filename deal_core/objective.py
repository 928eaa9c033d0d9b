"""The rules every answer is judged by, each defined once: the search's objective `log P + λ · Σ wᵢ Rᵢ`, the mean
token log-probability that rewards reading likelihood see, and the finish reason of a decoded answer. The search,
the proposals, greedy decoding and the result builder all call these."""

from __future__ import annotations

from typing import Literal

FinishReason = Literal["eos", "stop", "length"]


def objective(logp: float, reward_total: float, reward_weight: float) -> float:
    """What DeAL maximises: the answer's log-probability plus λ times its weighted reward sum."""
    return logp + reward_weight * reward_total


def mean_logprob(logp: float, tokens: int, ended: bool = False) -> float:
    """Mean log-probability per token; an end-of-sequence token that closed the answer counts as one."""
    return logp / max(tokens + ended, 1)


def finish_reason(ended: bool, stop_hit: bool) -> FinishReason:
    """Why a decoded answer ended: the model's end-of-sequence token, a stop string, or else the budget."""
    return "eos" if ended else "stop" if stop_hit else "length"
