"""`deal serve`, by part: `app.py` (routes, the served model), `protocol.py` (OpenAI shapes → `Request`),
`limits.py` (what one request may ask), `middleware.py` (API key, body limit), `sse.py` (streamed chunks),
`run.py` (uvicorn). Only `limits` is imported eagerly: the rest needs the `server` extra (FastAPI, uvicorn)."""

from typing import Any

from deal_core.serving.limits import ServerLimits

_LAZY = {"create_app": "app", "APIError": "protocol", "ChatRequest": "protocol", "CompletionRequest": "protocol",
         "running_server": "run", "serve": "run"}

__all__ = ["ServerLimits", *_LAZY]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'deal_core.serving' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"deal_core.serving.{_LAZY[name]}"), name)
