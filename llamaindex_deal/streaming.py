"""The one streaming adapter of the LlamaIndex wrapper: `DeAL.stream`/`DeAL.astream` deltas → LlamaIndex responses.

LlamaIndex streams carry the text so far and the new delta; the closing response is built from the
`GenerationResult` (usage, rewards, stats). Closing the generator early closes the stream, which stops the search.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import TypeVar

from deal_core.streaming import AsyncTextStream, TextStream
from deal_core.result import GenerationResult

Response = TypeVar("Response")


def stream_responses(stream: TextStream, partial: Callable[[str, str], Response],
                     last: Callable[[GenerationResult], Response]) -> Iterator[Response]:
    """`partial(text so far, delta)` per delta, then `last(result)`."""
    text = ""
    try:
        for delta in stream:
            text += delta
            yield partial(text, delta)
    finally:
        stream.close()
    yield last(stream.result)


async def astream_responses(stream: AsyncTextStream, partial: Callable[[str, str], Response],
                            last: Callable[[GenerationResult], Response]) -> AsyncIterator[Response]:
    text = ""
    try:
        async for delta in stream:
            text += delta
            yield partial(text, delta)
    finally:
        await stream.aclose()
    yield last(stream.result)
