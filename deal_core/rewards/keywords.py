"""Keyword coverage: the CommonGen-style lexical constraint."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field, field_validator

from deal_core.rewards.base import Reward
from deal_core.rewards.text import mentions, stem, words


class Keywords(Reward):
    """Fraction of `keywords` present in the text, inflections counted ("dance" matches "danced", "dancing").

    Range [0, 1]. Partial text is scored as is: a keyword can still appear later, so the search is pushed
    towards candidates whose lookahead already uses it.
    """

    kind: ClassVar[str] = "keywords"
    positional: ClassVar[str | None] = "keywords"
    keywords: list[str] = Field(min_length=1)

    @field_validator("keywords")
    @classmethod
    def _clean(cls, value: list[str]) -> list[str]:
        cleaned = [k.strip() for k in value if k.strip()]
        if not cleaned:
            raise ValueError("keywords must contain at least one non-blank word")
        return cleaned

    def present(self, text: str) -> list[bool]:
        text_words = {w.lower() for w in words(text)}
        text_stems = {stem(w) for w in text_words}
        return [mentions(k, text_words, text_stems) for k in self.keywords]

    def _score(self, prompts: Sequence[str], texts: Sequence[str], is_final: Sequence[bool]) -> list[float]:
        return [sum(self.present(t)) / len(self.keywords) for t in texts]
