"""Keyword coverage: the CommonGen-style lexical constraint, credited only where the words are used in sentences."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import ClassVar

from pydantic import Field, field_validator

from deal_core.rewards.base import Reward
from deal_core.rewards.prose import Use, clean_use
from deal_core.rewards.text import inflections, stem, words


@lru_cache(maxsize=1 << 16)
def _stem(word: str) -> str:
    return stem(word)


@lru_cache(maxsize=1 << 12)
def _forms(part: str) -> frozenset[str]:
    return frozenset(inflections(part))


@lru_cache(maxsize=1 << 18)
def matches(part: str, word: str) -> bool:
    """Whether the lowercased `word` is a regular inflection of `part`, one word of a keyword (as `text.mentions`)."""
    return word == part or word in _forms(part) or _stem(part) == _stem(word)


class Keywords(Reward):
    """Fraction of `keywords` the text uses in a sentence, inflections counted ("dance" matches "danced").

    Range [0, 1]. With `clean=True` (the default) a word earns credit only in prose (`deal_core/rewards/prose.py`):
    not in a bare or quoted list, a heading or label, a repetition loop, or a sentence about the words ("the word
    'dance' is used twice"); and a text that games the words that way, or loops, keeps only `FLAWED_SHARE` of its
    credit. `clean=False` is the plain count: a keyword anywhere in the text counts. Partial text is scored as is:
    a keyword can still appear later, so the search is pushed towards candidates whose lookahead already uses it.
    """

    kind: ClassVar[str] = "keywords"
    positional: ClassVar[str | None] = "keywords"
    FLAWED_SHARE: ClassVar[float] = 0.5  # fixed before any run; checked (not tuned) on the CommonGen hard-dev split
    keywords: list[str] = Field(min_length=1)
    clean: bool = Field(True, description="Credit only words used in sentences (False: a word anywhere counts).")

    @field_validator("keywords")
    @classmethod
    def _clean(cls, value: list[str]) -> list[str]:
        cleaned = [k.strip() for k in value if k.strip()]
        if not cleaned:
            raise ValueError("keywords must contain at least one non-blank word")
        return cleaned

    def present(self, text: str) -> list[bool]:
        """Per keyword, whether it occurs anywhere in the text (lists and quotes included)."""
        found = {w.lower() for w in words(text)}
        return [all(any(matches(part.lower(), w) for w in found) for part in words(k)) for k in self.keywords]

    def use(self, text: str) -> Use:
        """Per keyword, whether a sentence uses it, and how the text games the words (see `clean_use`)."""
        return clean_use(text, self.keywords, matches)

    def _score(self, prompts: Sequence[str], texts: Sequence[str], is_final: Sequence[bool]) -> list[float]:
        if not self.clean:
            return [sum(self.present(t)) / len(self.keywords) for t in texts]
        scores = []
        for text in texts:
            use = self.use(text)
            share = sum(use.clean) / len(self.keywords)
            scores.append(share * (self.FLAWED_SHARE if use.flawed else 1.0))
        return scores
