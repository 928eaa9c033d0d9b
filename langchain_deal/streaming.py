"""The one streaming adapter of the LangChain wrappers: `DeAL.stream`/`DeAL.astream` deltas → LangChain chunks.

Each delta becomes a chunk (and an `on_llm_new_token` callback); after the last delta comes a closing chunk built
from the `GenerationResult` (usage, rewards, stats). Closing the iterator early, or cancelling the task, closes the
stream, which stops the search.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

from deal_core.streaming import AsyncTextStream, TextStream
from deal_core.result import GenerationResult

Chunk = TypeVar("Chunk")


def stream_chunks(open_stream: Callable[[], TextStream], chunk: Callable[[str], Chunk],
                  last: Callable[[GenerationResult], Chunk], run_manager: Any = None) -> Iterator[Chunk]:
    stream = open_stream()
    try:
        for delta in stream:
            piece = chunk(delta)
            if run_manager:
                run_manager.on_llm_new_token(delta, chunk=piece)
            yield piece
    finally:
        stream.close()
    yield last(stream.result)


async def astream_chunks(open_stream: Callable[[], Awaitable[AsyncTextStream]], chunk: Callable[[str], Chunk],
                         last: Callable[[GenerationResult], Chunk], run_manager: Any = None) -> AsyncIterator[Chunk]:
    stream = await open_stream()
    try:
        async for delta in stream:
            piece = chunk(delta)
            if run_manager:
                await run_manager.on_llm_new_token(delta, chunk=piece)
            yield piece
    finally:
        await stream.aclose()
    yield last(stream.result)
