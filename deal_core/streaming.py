"""Incremental detokenization: text deltas that never split a UTF-8 character and never leak a stop string."""

from __future__ import annotations

from collections.abc import Sequence


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Text before the first stop string, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def _held_back(text: str, stop: Sequence[str]) -> int:
    """Length of the longest tail of `text` that could still grow into a stop string."""
    longest = 0
    for s in stop:
        for n in range(min(len(s) - 1, len(text)), longest, -1):
            if s.startswith(text[-n:]):
                longest = n
                break
    return longest


class DeltaTracker:
    """Feeds full decoded texts, yields only what is safe to show that was not shown before."""

    def __init__(self, stop: Sequence[str] = ()):
        self.stop = tuple(stop)
        self.emitted = ""

    def update(self, text: str, final: bool = False) -> str:
        text, _ = cut_at_stop(text, self.stop)
        if not final:
            if text.endswith("\ufffd"):  # a multi-byte character split across tokens
                text = text.rstrip("\ufffd")
            text = text[: len(text) - _held_back(text, self.stop)]
        if not text.startswith(self.emitted):
            # detokenization can re-space earlier text; never retract what was shown, wait for agreement
            common = len(self.emitted)
            if final:
                text = self.emitted + text[common:]
            else:
                return ""
        delta = text[len(self.emitted):]
        self.emitted = text
        return delta
