"""Admission policy for continuous batching: which calls may share a search, and which search steps next.

Calls share a search (and its forward passes) when their shared settings (`DeALConfig` fields declared SHARED:
top_k, lookahead, λ, …) and their prompt's length class agree; a sampled call, or one whose reward cost the caller's
pattern or schema sets (`Reward.bounded_cost`), gets a search of its own. Steps go to the search whose calls have had
the least model time each, so one costly call gets its share of the time, not one step in turn. The engine
(deal_core/runner.py) asks; this module never touches the model.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from deal_core.search import shared_key

if TYPE_CHECKING:
    from deal_core.preparing import Prepared


def length_class(prompt_tokens: int, short: int = 512) -> int:
    """0 for prompts up to `short` tokens, then one class per doubling: calls share a search only within a class."""
    return 0 if prompt_tokens <= short else math.ceil(math.log2(prompt_tokens / short))


def search_key(prepared: Prepared, call: int) -> tuple:
    """The search a call joins: calls with equal keys share one. `call` tells calls apart where none may share."""
    key = (*shared_key(prepared.config), max(length_class(len(e.ids)) for e in prepared.encoded))
    # sampled proposals draw from one generator per search, and a reward whose cost the caller's pattern or schema
    # sets would stall its neighbours' steps
    if prepared.config.sample or not prepared.rewards.bounded_cost:
        key = (*key, call)
    return key


def footprint(prepared: Prepared, slot: int) -> tuple[int, int]:
    """What one prompt of a call may hold in an engine's cache at once, at most: sequences (a row per candidate of
    each beam, plus two: measured on llama.cpp, the peak was beam_width × top_k or less for every setting tried) and
    KV cells (the prompt, the answer, each row's lookahead)."""
    config = prepared.config
    rows = config.beam_width * config.top_k + 2
    cells = len(prepared.encoded[slot].ids) + config.max_new_tokens + rows * (config.lookahead + 1)
    return rows, cells


class FairShare:
    """Model time used per search, per call it serves; the least served search steps next. A new search starts
    level with the least served one (not at zero, which would let it run alone until it caught up)."""

    def __init__(self) -> None:
        self.used: dict[tuple, float] = {}

    def open(self, key: tuple) -> None:
        self.used[key] = min(self.used.values(), default=0.0)

    def charge(self, key: tuple, seconds: float, calls: int) -> None:
        if key in self.used:
            self.used[key] += seconds / max(calls, 1)

    def close(self, key: tuple) -> None:
        self.used.pop(key, None)

    def next(self) -> tuple:
        return min(self.used, key=self.used.__getitem__)
