"""Which backend the runner is using for the model work in progress on this thread (or task).

The runner (deal_core/runner.py) is the only place that calls a model: a search's passes, the teacher-forced and
greedy completions of proposed answers, `DeAL.greedy`, and the final rewards. Around each it names the backend it
chose (the engine's own cache, or an isolated view of it) here, so that a reward that asks a model (`Judge`) asks
that backend — inside the call's isolation — and a test can tell a model call made outside the runner."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_SERVING: ContextVar[Any] = ContextVar("deal_serving_backend", default=None)


@contextmanager
def serving(lm: Any) -> Iterator[Any]:
    """Mark `lm` as the backend of the model work done inside the block."""
    token = _SERVING.set(lm)
    try:
        yield lm
    finally:
        _SERVING.reset(token)


def current_backend() -> Any:
    """The backend the runner is working with here, or None outside the runner."""
    return _SERVING.get()
