"""Incremental detokenization: text deltas that never split a UTF-8 character and never leak a stop string."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from deal_core.aio import iterate_in_thread
from deal_core.stops import cut_at_stop, held_back

if TYPE_CHECKING:
    from deal_core.result import GenerationResult


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
            text = text[: len(text) - held_back(text, self.stop)]
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


class IncrementalDecoder:
    """Text of a growing token list without decoding it whole at every step: each update decodes only the tokens
    since the last stable point, as the difference of two decodes that start at the same token (so a tokenizer's
    treatment of a sequence's first token, e.g. a dropped leading space, cancels out). Text is extended only when it
    does not end in a split UTF-8 character."""

    def __init__(self, decode: Callable[[Sequence[int]], str]):
        self.decode = decode
        self.text = ""
        self.prefix = self.read = 0  # tokens before `prefix` are settled; `prefix:read` is the overlap window

    def update(self, tokens: Sequence[int]) -> str:
        if len(tokens) > self.read:
            before = self.decode(tokens[self.prefix:self.read])
            after = self.decode(tokens[self.prefix:])
            if len(after) > len(before) and not after.endswith("\ufffd"):
                self.text += after[len(before):]
                self.prefix, self.read = self.read, len(tokens)
        return self.text


class TextStream:
    """Iterator of text deltas; `.result` holds the `GenerationResult` once the stream is exhausted."""

    def __init__(self, deltas: Iterator[str]):
        self._deltas = deltas
        self.result: GenerationResult | None = None

    def __iter__(self) -> TextStream:
        return self

    def __next__(self) -> str:
        return next(self._deltas)

    def close(self) -> None:
        self._deltas.close()  # stops the search and frees its KV cache


class AsyncTextStream:
    """Async iterator over a `TextStream` driven in a worker thread; `.result` as for `TextStream`."""

    def __init__(self, stream: TextStream):
        self._stream = stream
        self._items = iterate_in_thread(lambda: stream)

    @property
    def result(self) -> GenerationResult | None:
        return self._stream.result

    def __aiter__(self) -> AsyncTextStream:
        return self

    async def __anext__(self) -> str:
        return await self._items.__anext__()

    async def aclose(self) -> None:
        await self._items.aclose()
