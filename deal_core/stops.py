"""Stop strings, matched in one way everywhere: the search's window over its newest tokens, the backends' own
decoding loops, streamed deltas and the final text all call these."""

from __future__ import annotations

from collections.abc import Callable, Sequence


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """Text before the first stop string, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def held_back(text: str, stop: Sequence[str]) -> int:
    """Length of the longest tail of `text` that could still grow into a stop string."""
    longest = 0
    for s in stop:
        for n in range(min(len(s) - 1, len(text)), longest, -1):
            if s.startswith(text[-n:]):
                longest = n
                break
    return longest


def stop_window(stop: Sequence[str]) -> int:
    """How many of the newest tokens to decode to find a stop string that the latest tokens completed (a token is
    at least a quarter character wide in any tokenizer we load; two more for merges at the edges). 0: no stops."""
    return 4 * max(map(len, stop)) + 2 if stop else 0


def stopped(decode: Callable[[Sequence[int]], str], tokens: Sequence[int], new: int, stop: Sequence[str]) -> bool:
    """Whether the newest `new` of `tokens` completed a stop string (only a window of the text is decoded)."""
    span = stop_window(stop)
    return bool(span) and cut_at_stop(decode(tokens[-(new + span):]), stop)[1]
