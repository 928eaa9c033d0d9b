"""Rewards made from other things: a plain function, or a threshold turned into a hard constraint."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from pydantic import ConfigDict, Field, PrivateAttr, field_validator, model_validator

from deal_core.rewards.base import Reward, RewardSum, as_reward_sum


class FunctionReward(Reward):
    """Wraps `fn(prompts, texts) -> floats` as a named reward.

    The final-text flags are passed only to a parameter named `is_final` (`fn(prompts, texts, is_final)` or
    `fn(prompts, texts, *, is_final)`), by keyword; any other extra parameter keeps its default. A function that
    cannot be called as `fn(prompts, texts)` (plus `is_final=`) is refused when the reward is built.
    Give `bounds=(low, high)` when known so the search can prune; the default `(-inf, inf)` disables pruning.
    Not nameable from CLI or JSON specs (it is code, not configuration).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)
    positional: ClassVar[str | None] = "fn"
    fn: Callable[..., Sequence[float]] = Field(exclude=True)
    label: str | None = None
    low: float = -math.inf
    high: float = math.inf
    expensive: bool = Field(False, description="Score it only on candidates that cheaper rewards cannot rule out.")
    _final: str | None = PrivateAttr(None)  # how fn takes is_final: "keyword", "positional" (positional-only), None

    def __init__(self, fn: Callable[..., Sequence[float]] | None = None, /, *, bounds: tuple[float, float] | None = None,
                 **data: Any):
        if fn is not None:
            data["fn"] = fn
        if bounds is not None:
            data["low"], data["high"] = bounds
        super().__init__(**data)

    @model_validator(mode="after")
    def _ordered_bounds(self) -> FunctionReward:
        if not self.low <= self.high:
            raise ValueError(f"bounds must be (low, high) with low <= high, got ({self.low}, {self.high})")
        return self

    @field_validator("fn")
    @classmethod
    def _callable_as_documented(cls, fn: Callable[..., Sequence[float]]) -> Callable[..., Sequence[float]]:
        _final_kind(fn)
        return fn

    def model_post_init(self, context: Any) -> None:
        self._final = _final_kind(self.fn)

    @property
    def name(self) -> str:
        return self.label or getattr(self.fn, "__name__", "function")

    def bounds(self) -> tuple[float, float]:
        return (self.low, self.high)

    @property
    def is_expensive(self) -> bool:
        return self.expensive

    def _score(self, prompts: Sequence[str], texts: Sequence[str], is_final: Sequence[bool]) -> Sequence[float]:
        if self._final == "keyword":
            return self.fn(prompts, texts, is_final=is_final)
        if self._final == "positional":
            return self.fn(prompts, texts, is_final)
        return self.fn(prompts, texts)


def _final_kind(fn: Callable[..., Any]) -> str | None:
    """How `fn` takes the final-text flags; raises ValueError if it cannot be called as FunctionReward calls it."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):  # some builtins have no signature: call them with (prompts, texts)
        return None
    param = signature.parameters.get("is_final")
    if param is None or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
        kind, extra = None, {}
    elif param.kind == param.POSITIONAL_ONLY:
        kind, extra = "positional", {}
    else:
        kind, extra = "keyword", {"is_final": []}
    try:
        signature.bind([], [], *([[]] if kind == "positional" else []), **extra)
    except TypeError as exc:
        raise ValueError(
            f"FunctionReward calls fn(prompts, texts), adding is_final=... only for a parameter named is_final, "
            f"but {getattr(fn, '__name__', 'fn')}{signature} cannot be called that way ({exc}): give other "
            "parameters defaults, or name the flags parameter is_final"
        ) from None
    return kind


def reward_from_function(fn: Callable[..., Sequence[float]], name: str | None = None,
                         bounds: tuple[float, float] | None = None) -> FunctionReward:
    return FunctionReward(fn, label=name, bounds=bounds)


class Constraint(Reward):
    """A hard constraint: 0 when `reward` (a reward or weighted sum) is at least `threshold`, else -inf, which
    removes the candidate. If every candidate of a step is removed, the search keeps the likeliest and flags
    `constraint_fallback` in the result. Code-only, like `FunctionReward`: CLI and JSON specs name plain rewards."""

    reward: Reward | RewardSum
    threshold: float

    @field_validator("threshold")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("threshold must be finite")
        return value

    @property
    def name(self) -> str:
        inner = self.reward.name if isinstance(self.reward, Reward) else "+".join(as_reward_sum(self.reward).labels)
        return f"constraint({inner}>={self.threshold:g})"

    @property
    def can_veto(self) -> bool:
        return True

    @property
    def is_expensive(self) -> bool:
        return any(t.reward.is_expensive for t in as_reward_sum(self.reward).terms)

    def bounds(self) -> tuple[float, float]:
        return (-math.inf, 0.0)

    @property
    def uses_logprobs(self) -> bool:
        return any(t.reward.uses_logprobs for t in as_reward_sum(self.reward).terms)

    def _score(self, prompts: Sequence[str], texts: Sequence[str], is_final: Sequence[bool],
               logprobs: Sequence[float] | None = None) -> list[float]:
        values = as_reward_sum(self.reward).evaluate(prompts, texts, is_final, logprobs).total
        return [0.0 if v >= self.threshold else -math.inf for v in values]
