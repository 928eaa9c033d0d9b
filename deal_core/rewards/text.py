"""Word-level text helpers shared by the programmatic rewards."""

from __future__ import annotations

import re

WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")
_VOWELS = set("aeiouy")


def words(text: str) -> list[str]:
    return WORD.findall(text)


def stem(word: str) -> str:
    """A light suffix stripper so that inflections match: dance/danced/dancing, kid/kids, run/running, fly/flies."""
    w = word.lower()
    if len(w) > 4 and w.endswith(("ies", "ied")):
        return w[:-3] + "y"
    for suffix in ("ing", "ed", "es", "s"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3 and not w.endswith("ss"):
            w = w[: -len(suffix)]
            break
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in _VOWELS and w[-1] not in "lsz":
        w = w[:-1]  # running -> runn -> run
    if len(w) > 3 and w.endswith("e"):
        w = w[:-1]  # dance -> danc, matching danced/dancing
    return w


def inflections(word: str) -> set[str]:
    """Regular inflections of a base word: use -> uses/used/using, run -> runs/running/runner, fly -> flies."""
    w = word.lower()
    forms = {w, w + "s", w + "es", w + "ed", w + "d", w + "ing", w + "er", w + "ers"}
    if w.endswith("e"):
        forms |= {w[:-1] + "ing", w[:-1] + "er", w[:-1] + "ers"}
    if w.endswith("y") and len(w) > 2 and w[-2] not in _VOWELS:
        forms |= {w[:-1] + "ies", w[:-1] + "ied"}
    if len(w) >= 3 and w[-1] not in _VOWELS | set("wxy") and w[-2] in _VOWELS and w[-3] not in _VOWELS:
        forms |= {w + w[-1] + "ing", w + w[-1] + "ed", w + w[-1] + "er"}
    return forms


def mentions(keyword: str, text_words: set[str], text_stems: set[str]) -> bool:
    """Whether every word of `keyword` occurs in the text, in some regular inflection."""
    return all(
        part.lower() in text_words or bool(inflections(part) & text_words) or stem(part) in text_stems
        for part in words(keyword)
    )
