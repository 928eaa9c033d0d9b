"""Typed errors. Each message names the parameter at fault and what to change."""

from __future__ import annotations

import reprlib
from typing import Any

from pydantic import ValidationError


class DeALError(Exception):
    """Base class of every error this library raises on purpose."""


class ConfigError(DeALError, ValueError):
    """A search setting is out of bounds or inconsistent with another."""


class PromptError(DeALError, ValueError):
    """A prompt is empty, malformed, or does not fit the model."""


class ContextLengthError(PromptError):
    """The prompt plus the requested new tokens exceed the model's context window."""

    def __init__(self, prompt_tokens: int, max_new_tokens: int, context_window: int,
                 max_prompt_tokens: int | None = None):
        self.prompt_tokens = prompt_tokens
        self.max_new_tokens = max_new_tokens
        self.context_window = context_window
        if max_prompt_tokens is not None:  # a limit below the window (a server's), not the window itself
            super().__init__(f"prompt has {prompt_tokens} tokens, over this server's limit of {max_prompt_tokens} "
                             "prompt tokens: shorten it (or pass truncate_prompt=true to keep its last tokens)")
            return
        room = context_window - prompt_tokens
        if room < 1:
            advice = f"shorten the prompt by at least {prompt_tokens - context_window + 1} tokens"
        else:
            advice = f"lower max_new_tokens to at most {room} or shorten the prompt"
        advice += " (or pass truncate_prompt=True to keep the prompt's last tokens)"
        super().__init__(
            f"prompt has {prompt_tokens} tokens and max_new_tokens={max_new_tokens}, but the model's context "
            f"window is {context_window} tokens: {advice}"
        )


class ConstraintError(DeALError, ValueError):
    """A grammar that cannot be built or completed (bad schema, budget too small for the forced output)."""


class RewardError(DeALError, RuntimeError):
    """A reward raised, returned a non-finite value, or returned the wrong number of scores."""

    def __init__(self, reward_name: str, message: str):
        self.reward_name = reward_name
        super().__init__(f"reward {reward_name!r}: {message}")


class RewardSpecError(DeALError, ValueError):
    """A reward could not be built from its spec: unknown name, bad weight, bad argument."""


class ModelLoadError(DeALError, RuntimeError):
    """A model could not be found or loaded."""


class GenerationTimeout(DeALError, TimeoutError):
    """The search ran past the per-call timeout."""


class LimitError(DeALError, ValueError):
    """A request asks for more than a limit its server's operator set (`param` names the request field)."""

    def __init__(self, message: str, param: str | None = None):
        self.param = param
        super().__init__(message)


def check_text(text: str, where: str) -> str:
    """`text` unchanged if it is valid Unicode; a lone surrogate (e.g. "\\ud800", which no tokenizer can encode)
    is a `PromptError` naming `where` and the position."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PromptError(
            f"{where} contains a lone surrogate {text[exc.start]!r} at index {exc.start}: pass valid Unicode "
            "(e.g. decode bytes with errors='replace')"
        ) from None
    return text


def short_repr(value: Any, limit: int = 60) -> str:
    """`repr` for error messages, bounded in length and depth: hostile input may be huge or nested 5,000 deep."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"<an integer of {value.bit_length()} bits>"
    shorten = reprlib.Repr()
    shorten.maxlevel, shorten.maxstring, shorten.maxother = 3, limit, limit
    try:
        text = shorten.repr(value)
    except (RecursionError, ValueError):
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_validation_error(exc: ValidationError) -> str:
    """pydantic's errors as one line per field: `top_k (got 0): Input should be greater than or equal to 1`."""
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or exc.title
        given = f" (got {short_repr(err['input'])})" if err["loc"] and "input" in err else ""
        problems.append(f"{where}{given}: {err['msg']}")
    return "; ".join(problems)
