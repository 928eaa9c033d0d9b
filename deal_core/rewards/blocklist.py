"""Forbidden words and phrases."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field, field_validator

from deal_core.rewards.base import Reward
from deal_core.rewards.text import mentions, stem, words


class Blocklist(Reward):
    """1 / (1 + number of blocked terms present): 1.0 when clean. Single words match in any inflection
    ("kill" blocks "killed"); multi-word phrases match case-insensitively at word boundaries.
    With `hard=True` any hit vetoes the text (-inf), so the search never commits to it while it has a choice.
    Range [0, 1] (soft) or {-inf, 1} (hard).
    """

    kind: ClassVar[str] = "blocklist"
    positional: ClassVar[str | None] = "terms"
    terms: list[str] = Field(min_length=1)
    hard: bool = False

    @field_validator("terms")
    @classmethod
    def _clean(cls, value: list[str]) -> list[str]:
        cleaned = [t.strip() for t in value if t.strip()]
        if not cleaned:
            raise ValueError("terms must contain at least one non-blank word or phrase")
        return cleaned

    @property
    def can_veto(self) -> bool:
        return self.hard

    def bounds(self) -> tuple[float, float]:
        return (-math.inf if self.hard else 0.0, 1.0)

    def hits(self, text: str) -> list[str]:
        text_words = {w.lower() for w in words(text)}
        text_stems = {stem(w) for w in text_words}
        found = []
        for term in self.terms:
            if len(words(term)) > 1:
                if re.search(r"\b" + r"\W+".join(map(re.escape, words(term))) + r"\b", text, re.IGNORECASE):
                    found.append(term)
            elif mentions(term, text_words, text_stems):
                found.append(term)
        return found

    def _score(self, prompts: Sequence[str], texts: Sequence[str], is_final: Sequence[bool]) -> list[float]:
        out = []
        for text in texts:
            n = len(self.hits(text))
            out.append(-math.inf if self.hard and n else 1.0 / (1 + n))
        return out
