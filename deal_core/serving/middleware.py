"""What every HTTP request passes before a route sees it: the API key and the body-size limit (pure ASGI).

The size limit counts the bytes actually received, so a body sent in chunks without a Content-Length is held to it
too; the body is read here (at most `max_request_bytes`) and replayed to the route. Later `receive` calls reach the
server's own, so a route can still notice that its client went away (`until_disconnect`).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from deal_core.serving.protocol import APIError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


async def send_error(send: Send, error: APIError, headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    body = json.dumps(error.body()).encode()
    await send({"type": "http.response.start", "status": error.status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


class RequestGuard:
    """API key (OpenAI's 401 shape) on /v1 routes, then the body limit (413) on every request with a body."""

    def __init__(self, app: Any, max_bytes: int, api_key: str | None = None):
        self.app, self.max_bytes, self.api_key = app, max_bytes, api_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.api_key is not None and scope["path"].startswith("/v1") and scope["method"] != "OPTIONS":
            token = _bearer(scope)
            if token is None or not hmac.compare_digest(token.encode(), self.api_key.encode()):
                return await send_error(send, APIError(
                    401, "Incorrect API key provided: pass the server's key as a bearer token "
                         "(Authorization: Bearer KEY; the openai client's api_key=)", code="invalid_api_key"),
                    ((b"www-authenticate", b"Bearer"),))
        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await send_error(send, self._too_big())
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left before sending its whole body
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return await send_error(send, self._too_big())
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    def _too_big(self) -> APIError:
        return APIError(413, f"request body over {self.max_bytes} bytes (this server's limit, max_request_bytes)",
                        code="request_too_large")


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def until_disconnect(receive: Receive) -> None:
    """Returns when the client has gone away (the route has read its body already)."""
    while (await receive())["type"] != "http.disconnect":
        pass
