"""Running the (synchronous, CPU-bound) search from asyncio without blocking the event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


async def iterate_in_thread(make_iterator: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
    """Drive `make_iterator()` in a worker thread and yield its items here.

    Leaving the `async for` early, or cancelling the task, stops the worker at its next item (one search step)
    and closes the iterator, which releases its KV cache.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    cancelled = threading.Event()

    def post(kind: str, value: object) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
        except RuntimeError:  # the loop closed while we were working
            cancelled.set()

    def worker() -> None:
        iterator = make_iterator()
        try:
            for item in iterator:
                if cancelled.is_set():
                    break
                post("item", item)
            post("done", _DONE)
        except BaseException as exc:  # re-raised in the consumer, cancellation included
            post("error", exc)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    # A thread of its own, not the loop's default executor: a long search must not hold one of the executor's few
    # threads (min(32, cores + 4)), which other requests need to prepare and tokenize.
    threading.Thread(target=worker, name="deal-call", daemon=True).start()
    try:
        while True:
            kind, value = await queue.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                break
    finally:
        cancelled.set()
