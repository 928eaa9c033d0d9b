"""Length in words, judged fairly on partial text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field, model_validator

from deal_core.rewards.base import Reward
from deal_core.rewards.text import words


class Length(Reward):
    """1.0 when the word count meets `min_words` / `max_words` / `target_words`, falling linearly to 0.

    Partial text is only penalised for what it can no longer fix: being too long. Being too short counts only
    once the text is final. Range [0, 1].
    """

    kind: ClassVar[str] = "length"
    min_words: int | None = Field(None, ge=0)
    max_words: int | None = Field(None, ge=1)
    target_words: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _check(self) -> Length:
        if self.min_words is None and self.max_words is None and self.target_words is None:
            raise ValueError("Length needs at least one of min_words, max_words, target_words")
        if self.min_words is not None and self.max_words is not None and self.min_words > self.max_words:
            raise ValueError(f"min_words={self.min_words} is above max_words={self.max_words}")
        return self

    def _one(self, n: int, final: bool) -> float:
        penalties = []
        if self.max_words is not None and n > self.max_words:
            penalties.append((n - self.max_words) / self.max_words)
        if final and self.min_words is not None and n < self.min_words:
            penalties.append((self.min_words - n) / max(self.min_words, 1))
        if self.target_words is not None and (n > self.target_words or final):
            penalties.append(abs(n - self.target_words) / self.target_words)
        return max(0.0, 1.0 - max(penalties, default=0.0))

    def _score(self, prompts: Sequence[str], texts: Sequence[str], is_final: Sequence[bool]) -> list[float]:
        return [self._one(len(words(t)), f) for t, f in zip(texts, is_final)]
