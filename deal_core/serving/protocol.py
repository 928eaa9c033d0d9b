"""OpenAI's request and response shapes for `deal serve`, and the step from an HTTP body to a `Request`.

DeAL's own settings and rewards travel in one namespaced field, `"deal"` (the `openai` client's
`extra_body={"deal": {"rewards": [...], "top_k": 8}}`); its fields are `DeALConfig`'s, checked by it.
"""

from __future__ import annotations

from typing import Any

from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.completion import Completion
from pydantic import BaseModel, ConfigDict, Field

from deal_core.config import DeALConfig, wrapper_names
from deal_core.request import Request
from deal_core.result import GenerationResult
from deal_core.rewards import RewardSum, rewards_from_json
from deal_core.serving.limits import ServerLimits, check_caps, check_settings

FINISH = {"eos": "stop", "stop": "stop", "length": "length", "tool_calls": "tool_calls"}
# every body the server answers with is checked against the `openai` package's own type for its "object"
SHAPES = {"chat.completion": ChatCompletion, "text_completion": Completion,
          "chat.completion.chunk": ChatCompletionChunk}


def openai_shape(body: dict[str, Any]) -> dict[str, Any]:
    """`body` validated by the `openai` type its "object" names and dumped as set (extra fields, `deal`, kept)."""
    return SHAPES[body["object"]].model_validate(body).model_dump(mode="json", exclude_unset=True)


class APIError(Exception):
    """An error in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}` with an HTTP status."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.code, self.param = status, message, kind, code, param

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


class DeALOptions(BaseModel):
    """The `deal` extension field: rewards (JSON specs) and any `DeALConfig` setting."""

    model_config = ConfigDict(extra="allow")
    rewards: list[dict[str, Any]] | None = None


class RequestBody(BaseModel):
    """What a chat and a completion request body share."""

    model_config = ConfigDict(extra="allow")  # other OpenAI fields (user, metadata, store, …) are accepted, unused
    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    temperature: float | None = None  # bounds: DeALConfig's
    top_p: float | None = None
    seed: int | None = None
    n: int = 1
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    logprobs: bool | None = None
    deal: DeALOptions | None = None


class ChatRequest(RequestBody):
    messages: list[dict[str, Any]] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None


class CompletionRequest(RequestBody):
    prompt: str | list[str]


# OpenAI body fields that are DeALConfig settings: their wrapper names (DeALConfig declares them: `max_tokens`, ...)
# where the body has such a field, and OpenAI's newer name for the budget
_OPENAI_SETTINGS = {**{name: setting for setting, name in wrapper_names().items() if name in RequestBody.model_fields},
                    "max_completion_tokens": "max_new_tokens"}


def _settings(body: RequestBody, options: dict[str, Any], base: DeALConfig,
              limits: ServerLimits) -> tuple[dict[str, Any], dict[str, str]]:
    """The request's DeALConfig overrides and, for each, the request field it came from. The server's limits
    apply to a setting wherever it is given (`max_tokens`, `max_completion_tokens` or `deal.max_new_tokens`)."""
    settings: dict[str, Any] = {}
    asked: dict[str, str] = {}
    for field, setting in _OPENAI_SETTINGS.items():
        value = getattr(body, field, None)
        if value is not None and setting not in settings:
            settings[setting], asked[setting] = value, field
    for setting, value in options.items():
        if setting in settings and value is not None and value != settings[setting]:
            raise APIError(400, f"deal.{setting}={value!r} contradicts {asked[setting]}={settings[setting]!r}: "
                                "give it once", param=f"deal.{setting}")
        settings[setting] = value
        asked.setdefault(setting, f"deal.{setting}")
    if "max_new_tokens" not in settings:  # the library's default budget, within the server's cap
        settings["max_new_tokens"] = min(limits.max_tokens, base.max_new_tokens)
    settings["timeout_s"] = settings.get("timeout_s") or limits.timeout_s
    return settings, asked


def to_request(body: RequestBody, messages: Any, limits: ServerLimits, default_rewards: RewardSum,
               base: DeALConfig, pinned: RewardSum | None = None) -> Request:
    """An OpenAI-style body as a `Request` (typed errors for everything a caller can get wrong, limits included).
    `default_rewards` apply when the body names none; `pinned` rewards (the operator's) always apply, added to the
    request's own (`with_pinned`)."""
    if body.n != 1:
        raise APIError(400, f"n={body.n} is not supported: DeAL returns one aligned answer per request", param="n")
    if body.logprobs:
        raise APIError(400, "logprobs are not supported", param="logprobs")
    options = body.deal.model_dump(exclude_none=True) if body.deal else {}
    if "user_text" in options:  # what Safety judges: a client must not point it away from its own messages
        raise APIError(400, "deal.user_text is not accepted over HTTP: rewards (Safety) judge the last user "
                            "message. Remove deal.user_text and send the user's own words as the last user message; "
                            "put retrieved passages in a system message or an earlier turn", param="deal.user_text")
    specs = options.pop("rewards", None)
    settings, asked = _settings(body, options, base, limits)
    check_caps(settings, limits, asked)
    rewards = default_rewards if specs is None else rewards_from_json(specs, models=limits.reward_models)
    if pinned is not None and pinned.terms:
        rewards = with_pinned(pinned, rewards, base.updated(**settings), base)
    output: dict[str, Any] = {}
    if isinstance(body, ChatRequest):
        output = {"tools": body.tools, "tool_choice": body.tool_choice, "parallel_tool_calls": body.parallel_tool_calls,
                  "response_format": body.response_format}
    request = Request.of(messages, rewards, **output, **settings)  # validated once, here
    check_settings(request.config(base), limits, asked)  # settings checked by DeALConfig before the limits
    return request


def with_pinned(pinned: RewardSum, rewards: RewardSum, config: DeALConfig, base: DeALConfig) -> RewardSum:
    """The operator's pinned rewards plus the request's own. A request may add rewards, never weaken a pinned one:
    a reward of a pinned kind in the request, or a reward weight λ below the server's, is a 400."""
    kinds = {t.reward.name for t in pinned.terms}
    clash = sorted({t.reward.name for t in rewards.terms} & kinds)
    if clash:
        raise APIError(400, f"reward(s) {', '.join(clash)} are pinned by this server and always apply; a request may "
                            f"add other rewards but not set these: drop them from deal.rewards", param="deal.rewards")
    if config.reward_weight < base.reward_weight:
        raise APIError(400, f"deal.reward_weight={config.reward_weight:g} is below this server's "
                            f"{base.reward_weight:g}: with pinned rewards ({', '.join(sorted(kinds))}) a request may "
                            f"not lower it", param="deal.reward_weight")
    return pinned + rewards


def tool_calls(result: GenerationResult) -> list[dict[str, Any]]:
    """The answer's calls in OpenAI's shape (arguments as a JSON string)."""
    return [c.to_openai() for c in result.tool_calls]


def completion_body(ident: str, created: int, model: str, result: GenerationResult, chat: bool) -> dict[str, Any]:
    """A whole (non-streamed) answer: `chat.completion` or `text_completion`."""
    message: dict[str, Any] = {"role": "assistant", "content": result.text}
    if result.tool_calls:
        message = {"role": "assistant", "content": result.text or None, "tool_calls": tool_calls(result)}
    answer = {"message": message} if chat else {"text": result.text}
    return openai_shape({
        "id": ident, "object": "chat.completion" if chat else "text_completion", "created": created, "model": model,
        "choices": [{"index": 0, **answer, "finish_reason": FINISH[result.finish_reason], "logprobs": None}],
        "usage": result.usage.model_dump(), "deal": result.summary()})
