"""`deal serve`: an OpenAI-compatible HTTP API over a DeAL-aligned model (FastAPI + uvicorn, the `server` extra).

    POST /v1/chat/completions   JSON, or server-sent events with `"stream": true` (ends with `data: [DONE]`)
    POST /v1/completions        raw text completion (no chat template)
    GET  /v1/models, GET /health

Every field is untrusted: errors use OpenAI's error shape with a 4xx status, and each request is held to the
operator's `ServerLimits`. Nothing that touches the model runs on the event loop: a request is parsed, tokenized
and checked in a worker thread, and its search runs in the scheduler's thread, so `/health` and other clients are
never stuck behind a search step. A client that disconnects (streaming or not) stops its search at the next step.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from typing import Any

from fastapi import FastAPI
from fastapi import Request as HTTPRequest
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.background import BackgroundTask

from deal_core.decoder import DeAL, Prepared
from deal_core.errors import ContextLengthError, DeALError, GenerationTimeout, LimitError, ModelLoadError
from deal_core.rewards import RewardSum
from deal_core.serving.limits import ServerLimits, check_prompt
from deal_core.serving.middleware import RequestGuard, until_disconnect
from deal_core.serving.protocol import (APIError, ChatRequest, CompletionRequest, RequestBody, completion_body,
                                        to_request)
from deal_core.serving.sse import sse


def error_of(exc: DeALError) -> APIError:
    """A library error as an HTTP error: the request's input, settings or rewards (400), a limit (400 naming it),
    the time limit (408), a model that could not load (503)."""
    if isinstance(exc, GenerationTimeout):
        return APIError(408, str(exc), kind="timeout_error", code="request_timeout")
    if isinstance(exc, ModelLoadError):
        return APIError(503, str(exc), kind="server_error")
    code = "context_length_exceeded" if isinstance(exc, ContextLengthError) else \
        "limit_exceeded" if isinstance(exc, LimitError) else None
    return APIError(400, str(exc), code=code, param=getattr(exc, "param", None))


class Slots:
    """Requests in flight, at most `limit`; one more is a 429 to retry later."""

    def __init__(self, limit: int):
        self.limit, self.used, self._lock = limit, 0, threading.Lock()

    def take(self) -> Any:
        with self._lock:
            if self.used >= self.limit:
                raise APIError(429, f"this server is answering {self.limit} requests (its limit, max_concurrent): "
                                    "retry shortly", kind="rate_limit_error", code="server_busy")
            self.used += 1
        released = threading.Event()

        def release() -> None:
            if not released.is_set():
                released.set()
                with self._lock:
                    self.used -= 1

        return release


class Service:
    """One served model: turns a parsed body into an answer (JSON or SSE) within the limits."""

    def __init__(self, deal: DeAL, limits: ServerLimits, rewards: RewardSum, batching: bool,
                 pinned: RewardSum | None = None, isolate_calls: bool = False):
        self.chat = deal.variant(batching=batching, isolate_calls=isolate_calls)  # one run loop for both endpoints over the same weights
        self.raw = self.chat.variant(rewards=None, use_chat_template=False)  # /v1/completions
        self.limits, self.rewards, self.name = limits, rewards, deal.lm.name
        self.pinned = pinned or RewardSum()
        self.slots = Slots(limits.max_concurrent)

    def check_model(self, body: RequestBody) -> None:
        if body.model not in (None, "", self.name):
            raise APIError(404, f"model {body.model!r} is not served here; this server serves {self.name!r}",
                           code="model_not_found", param="model")

    def prepare(self, body: RequestBody, prompt: Any, decoder: DeAL) -> Prepared:
        """In a worker thread: the body as a request within the limits, tokenized (waits for the model lock)."""
        request = to_request(body, prompt, self.limits, self.rewards, decoder.config, self.pinned)
        prepared = decoder.prepare(request, max_prompt_tokens=self.limits.max_prompt_tokens)
        check_prompt(prepared.config, self.limits, len(prepared.encoded[0].ids))
        return prepared

    async def answer(self, body: RequestBody, prompt: Any, chat: bool, receive: Any) -> Any:
        decoder = self.chat if chat else self.raw
        release = self.slots.take()
        try:
            prepared = await asyncio.to_thread(self.prepare, body, prompt, decoder)
            ident = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
            if body.stream:
                include = bool((body.stream_options or {}).get("include_usage"))
                kind = "chat.completion.chunk" if chat else "text_completion"
                events = sse(ident, kind, self.name, await decoder.astream(prepared), include,
                             lambda exc: error_of(exc).body(), release)
                return StreamingResponse(events, media_type="text/event-stream", background=BackgroundTask(release))
            result = await _unless_disconnected(decoder.agenerate(prepared), receive)
            return completion_body(ident, int(time.time()), self.name, result, chat)
        except BaseException:
            release()
            raise
        finally:
            if not body.stream:
                release()


async def _unless_disconnected(work: Any, receive: Any) -> Any:
    """Await `work`; if the client goes away first, cancel it (its search stops at the next step)."""
    task, gone = asyncio.ensure_future(work), asyncio.ensure_future(until_disconnect(receive))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            task.cancel()
            raise APIError(499, "the client closed the connection")  # nobody reads this answer
        return task.result()
    finally:
        gone.cancel()


def create_app(deal: DeAL | None = None, *, model: str | None = None, rewards: RewardSum | None = None,
               limits: ServerLimits | None = None, batching: bool = True,
               pinned: RewardSum | None = None, isolate_calls: bool = False) -> FastAPI:
    """The FastAPI application. `deal` (or `model`) is the aligned model; `rewards` are the server-wide defaults
    a request uses when it names none; `pinned` rewards always apply (a request may add its own, never drop or
    re-weight these: protocol.with_pinned); `limits` what one request may ask. With `batching` (the default)
    concurrent requests share forward passes (continuous batching, deal_core/scheduler.py); on llama.cpp an answer
    may then differ from the request alone by the engine's rounding, and `isolate_calls` keeps each bit-identical
    (requests in caches of their own, taking turns)."""
    deal = deal or DeAL(model)
    limits = limits or ServerLimits()
    service = Service(deal, limits, rewards if rewards is not None else deal.rewards, batching, pinned, isolate_calls)
    app = FastAPI(title="DeAL", description="OpenAI-compatible API over a DeAL-aligned model")
    _errors(app)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "model": service.name}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": service.name, "object": "model", "created": 0, "owned_by": "deal"}]}

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatRequest, http: HTTPRequest) -> Any:
        service.check_model(body)
        return await service.answer(body, body.messages, True, http.receive)

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, http: HTTPRequest) -> Any:
        service.check_model(body)
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if len(prompts) != 1:
            raise APIError(400, "prompt must be one string (or a list of one)", param="prompt")
        return await service.answer(body, prompts[0], False, http.receive)

    app.add_middleware(RequestGuard, max_bytes=limits.max_request_bytes, api_key=limits.api_key)
    if limits.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(limits.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])
    return app


def _errors(app: FastAPI) -> None:
    """OpenAI's error shape for every error a request can cause."""
    @app.exception_handler(APIError)
    async def api_error(_: HTTPRequest, exc: APIError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: HTTPRequest, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:])
        message = f"{where}: {first.get('msg', 'invalid request')}" if where else first.get("msg", "invalid request")
        return JSONResponse(APIError(422, message, param=where or None).body(), status_code=422)

    @app.exception_handler(DeALError)
    async def deal_error(_: HTTPRequest, exc: DeALError) -> JSONResponse:
        error = error_of(exc)
        return JSONResponse(error.body(), status_code=error.status)
