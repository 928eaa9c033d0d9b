"""`deal serve`: an OpenAI-compatible HTTP API over a DeAL-aligned model (FastAPI + uvicorn, the `server` extra).

    POST /v1/chat/completions   JSON, or server-sent events with `"stream": true` (ends with `data: [DONE]`)
    POST /v1/completions        raw text completion (no chat template)
    GET  /v1/models, GET /health

DeAL's own settings and rewards travel in one namespaced field, `"deal"` (the `openai` client's
`extra_body={"deal": {"rewards": [{"name": "keywords", "keywords": ["frisbee"]}], "top_k": 8}}`). Rewards are JSON
specs (`rewards_from_json`): only registered rewards can be named. Every field is untrusted input; errors use
OpenAI's error shape with a 4xx status. Concurrent requests take turns on the model step by step (one lock per
loaded model); a client that disconnects stops its search at the next step.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from deal_core.decoder import DeAL
from deal_core.errors import ContextLengthError, DeALError, ModelLoadError
from deal_core.request import Request
from deal_core.result import GenerationResult
from deal_core.rewards import RewardSum, rewards_from_json

FINISH = {"eos": "stop", "stop": "stop", "length": "length", "tool_calls": "tool_calls"}


class ServerLimits(BaseModel):
    max_request_bytes: int = 1_000_000
    max_tokens: int = 1024  # the most new tokens one request may ask for


class DeALOptions(BaseModel):
    """The `deal` extension field: rewards (JSON specs) and any `DeALConfig` setting."""

    model_config = ConfigDict(extra="allow")
    rewards: list[dict[str, Any]] | None = None


class _Common(BaseModel):
    model_config = ConfigDict(extra="allow")  # other OpenAI fields (user, metadata, store, …) are accepted, unused
    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    temperature: float | None = Field(None, ge=0)
    top_p: float | None = Field(None, gt=0, le=1)
    seed: int | None = None
    n: int = 1
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    logprobs: bool | None = None
    deal: DeALOptions | None = None


class ChatRequest(_Common):
    messages: list[dict[str, Any]] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None


class CompletionRequest(_Common):
    prompt: str | list[str]


class APIError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.param = status, message, kind, code, param

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


def to_request(body: _Common, messages: Any, limits: ServerLimits, default_rewards: RewardSum) -> Request:
    """An OpenAI-style body as a `Request` (typed errors for everything a caller can get wrong)."""
    if body.n != 1:
        raise APIError(400, f"n={body.n} is not supported: DeAL returns one aligned answer per request", param="n")
    if body.logprobs:
        raise APIError(400, "logprobs are not supported", param="logprobs")
    budget = getattr(body, "max_completion_tokens", None) or body.max_tokens
    if budget is not None and budget > limits.max_tokens:
        raise APIError(400, f"max_tokens={budget} exceeds this server's limit of {limits.max_tokens}",
                       param="max_tokens")
    options = body.deal.model_dump(exclude_none=True) if body.deal else {}
    specs = options.pop("rewards", None)
    rewards = default_rewards if specs is None else rewards_from_json(specs)
    settings = {"max_new_tokens": budget or min(limits.max_tokens, 128), "stop": body.stop,
                "temperature": body.temperature, "top_p": body.top_p, "seed": body.seed, **options}
    output: dict[str, Any] = {}
    if isinstance(body, ChatRequest):
        output = {"tools": body.tools, "tool_choice": body.tool_choice, "parallel_tool_calls": body.parallel_tool_calls,
                  "response_format": body.response_format}
    return Request.of(messages, rewards, **output, **settings)


def _tool_calls(result: GenerationResult) -> list[dict[str, Any]]:
    """The answer's calls in OpenAI's shape (arguments as a JSON string)."""
    return [{"id": c.id, "type": "function",
             "function": {"name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)}}
            for c in result.tool_calls]


def _deal_info(result: GenerationResult) -> dict[str, Any]:
    return {"rewards": result.rewards, "reward_total": result.reward_total, "finish_reason": result.finish_reason,
            "stats": result.stats.model_dump()}


def create_app(deal: DeAL | None = None, *, model: str | None = None, rewards: RewardSum | None = None,
               limits: ServerLimits | None = None, batching: bool = True) -> Any:
    """The FastAPI application. `deal` (or `model`) is the aligned model; `rewards` are the server-wide defaults
    a request uses when it names none. With `batching` (the default) concurrent requests share forward passes
    (continuous batching, deal_core/scheduler.py); without it they take turns on the model."""
    from fastapi import FastAPI
    from fastapi import Request as HTTPRequest
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse

    deal = deal or DeAL(model)
    if deal.batching != batching:  # the server's own decoder over the same weights
        deal = DeAL(deal.lm, deal.rewards, deal.config, deal.use_chat_template, batching=batching)
    raw = DeAL(deal.lm, config=deal.config, use_chat_template=False, batching=batching)  # /v1/completions
    limits = limits or ServerLimits()
    default_rewards = rewards if rewards is not None else deal.rewards
    name = deal.lm.name
    app = FastAPI(title="DeAL", description="OpenAI-compatible API over a DeAL-aligned model")

    @app.middleware("http")
    async def limit_size(request: HTTPRequest, call_next: Any) -> Any:
        size = request.headers.get("content-length")
        if size is not None and (not size.isdigit() or int(size) > limits.max_request_bytes):
            return JSONResponse(APIError(413, f"request body over {limits.max_request_bytes} bytes").body(), 413)
        return await call_next(request)

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
        code = "context_length_exceeded" if isinstance(exc, ContextLengthError) else None
        status = 503 if isinstance(exc, ModelLoadError) else 400  # the request's input, settings or rewards
        return JSONResponse(APIError(status, str(exc), code=code).body(), status_code=status)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "model": name}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "deal"}]}

    def _check_model(body: _Common) -> None:
        if body.model not in (None, "", name):
            raise APIError(404, f"model {body.model!r} is not served here; this server serves {name!r}",
                           code="model_not_found", param="model")

    async def _sse(stream_id: str, kind: str, stream: Any, include_usage: bool) -> AsyncIterator[str]:
        created = int(time.time())

        def chunk(choice: dict[str, Any] | None, **extra: Any) -> str:
            body = {"id": stream_id, "object": kind, "created": created, "model": name,
                    "choices": [choice] if choice else [], **extra}
            return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

        chat = kind == "chat.completion.chunk"
        try:
            if chat:
                yield chunk({"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None})
            async for delta in stream:
                piece = {"content": delta} if chat else None
                yield chunk({"index": 0, **({"delta": piece} if chat else {"text": delta}), "finish_reason": None})
        finally:
            await stream.aclose()  # a client that went away stops the search here
        result = stream.result
        if chat and result.tool_calls:  # decided at the end: one delta per call, by index
            calls = [{"index": i, **call} for i, call in enumerate(_tool_calls(result))]
            yield chunk({"index": 0, "delta": {"tool_calls": calls}, "finish_reason": None})
        last = {"index": 0, "finish_reason": FINISH[result.finish_reason]}
        yield chunk({**last, "delta": {}} if chat else {**last, "text": ""}, deal=_deal_info(result))
        if include_usage:
            yield chunk(None, usage=result.usage.model_dump())
        yield "data: [DONE]\n\n"

    async def _respond(body: _Common, request: Request, decoder: DeAL, chat: bool) -> Any:
        """One answer: server-sent events when `stream` is set, else one JSON object."""
        ident = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        if body.stream:
            include = bool((body.stream_options or {}).get("include_usage"))
            stream = await decoder.astream(request)  # bad input fails here, with a status, before the stream opens
            kind = "chat.completion.chunk" if chat else "text_completion"
            return StreamingResponse(_sse(ident, kind, stream, include), media_type="text/event-stream")
        result = await decoder.agenerate(request)
        message: dict[str, Any] = {"role": "assistant", "content": result.text}
        if result.tool_calls:
            message = {"role": "assistant", "content": result.text or None, "tool_calls": _tool_calls(result)}
        answer = {"message": message} if chat else {"text": result.text}
        return {"id": ident, "object": "chat.completion" if chat else "text_completion", "created": int(time.time()),
                "model": name, "choices": [{"index": 0, **answer, "finish_reason": FINISH[result.finish_reason],
                                            "logprobs": None}],
                "usage": result.usage.model_dump(), "deal": _deal_info(result)}

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatRequest) -> Any:
        _check_model(body)
        request = to_request(body, body.messages, limits, default_rewards)
        return await _respond(body, request, deal, chat=True)

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest) -> Any:
        _check_model(body)
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if len(prompts) != 1:
            raise APIError(400, "prompt must be one string (or a list of one)", param="prompt")
        return await _respond(body, to_request(body, prompts[0], limits, default_rewards), raw, chat=False)

    return app


@contextlib.contextmanager
def running_server(app: Any, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run `app` with uvicorn in a background thread (port 0: a free one); yields its base URL, stops on exit."""
    import socket
    import threading

    import uvicorn

    if port == 0:
        with socket.socket() as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"the server on {host}:{port} did not start")
        time.sleep(0.05)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def serve(model: str | None = None, host: str = "127.0.0.1", port: int = 8000,
          rewards: RewardSum | None = None, log_level: Literal["info", "warning"] = "info",
          batching: bool = True) -> None:
    """Run the server until interrupted."""
    import uvicorn

    uvicorn.run(create_app(model=model, rewards=rewards, batching=batching), host=host, port=port,
                log_level=log_level)
