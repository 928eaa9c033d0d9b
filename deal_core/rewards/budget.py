"""Time budgets for rewards whose cost depends on untrusted input (a regex pattern, a JSON Schema).

Such rewards run while the model lock is held, so their cost is every caller's wait. Each scoring call opens
`deadline(seconds)`; deadlines nest and the earliest wins, so code that drives a whole generation can bound all of
its reward work the same way (e.g. by its `timeout_s`). Work past the deadline raises `BudgetExceeded`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

_LOCAL = threading.local()


class BudgetExceeded(Exception):
    """Reward work ran past the current deadline."""


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Bound the budgeted reward work on this thread to `seconds` from now (or less, inside an earlier deadline)."""
    previous = getattr(_LOCAL, "deadline", math.inf)
    _LOCAL.deadline = min(previous, time.perf_counter() + seconds)
    try:
        yield
    finally:
        _LOCAL.deadline = previous


def time_left() -> float:
    """Seconds until this thread's deadline (inf outside one); raises `BudgetExceeded` once it has passed."""
    left = getattr(_LOCAL, "deadline", math.inf) - time.perf_counter()
    if left <= 0:
        raise BudgetExceeded
    return left
