"""Server-sent events for a streamed answer: OpenAI's chunk objects, ending with `data: [DONE]`."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from deal_core.errors import DeALError
from deal_core.serving.protocol import FINISH, openai_shape, tool_calls


def _event(body: dict[str, Any]) -> str:
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


async def sse(stream_id: str, kind: str, model: str, stream: Any, include_usage: bool,
              error_body: Callable[[DeALError], dict[str, Any]], done: Callable[[], None]) -> AsyncIterator[str]:
    """The chunks of one streamed answer. An error after the stream opened (a timeout, a reward that failed)
    arrives as one `{"error": ...}` event, which the `openai` client raises; `done` runs however it ends."""
    created = int(time.time())

    def chunk(choice: dict[str, Any] | None, **extra: Any) -> str:
        return _event(openai_shape({"id": stream_id, "object": kind, "created": created, "model": model,
                                    "choices": [choice] if choice else [], **extra}))

    chat = kind == "chat.completion.chunk"
    try:
        if chat:
            yield chunk({"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None})
        try:
            async for delta in stream:
                piece = {"delta": {"content": delta}} if chat else {"text": delta}
                yield chunk({"index": 0, **piece, "finish_reason": None})
        except DeALError as exc:
            yield _event(error_body(exc))
            return
        finally:
            await stream.aclose()  # a client that went away stops the search here
        result = stream.result
        if chat and result.tool_calls:  # decided at the end: one delta per call, by index
            calls = [{"index": i, **call} for i, call in enumerate(tool_calls(result))]
            yield chunk({"index": 0, "delta": {"tool_calls": calls}, "finish_reason": None})
        last = {"index": 0, "finish_reason": FINISH[result.finish_reason]}
        yield chunk({**last, "delta": {}} if chat else {**last, "text": ""}, deal=result.summary())
        if include_usage:
            yield chunk(None, usage=result.usage.model_dump())
        yield "data: [DONE]\n\n"
    finally:
        done()
