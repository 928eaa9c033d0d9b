"""One framework-neutral request: what the CLI, the LangChain and LlamaIndex wrappers (and an HTTP server) build.

    Request(messages=[Message(role="user", content="Hi")], rewards=Keywords(["hi"]), settings={"top_k": 5})

Every field is validated here, as untrusted input: roles, text (no lone surrogates), tool names and schemas,
settings (by `DeALConfig`). Wrappers only convert their framework's objects into these.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from deal_core.config import DeALConfig, make_config
from deal_core.errors import ConfigError, PromptError, check_text, describe_validation_error, short_repr
from deal_core.rewards.base import RewardLike, RewardSum, as_reward_sum

Role = Literal["system", "developer", "user", "assistant", "tool"]


class ToolCall(BaseModel):
    """A call the assistant made: `arguments` is the parsed JSON object."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str
    name: str = Field(min_length=1, max_length=64)
    arguments: dict[str, Any] = Field(default_factory=dict)

    def to_template(self) -> dict[str, Any]:
        """The shape transformers chat templates expect (OpenAI's, with arguments as an object)."""
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


class Message(BaseModel):
    """One chat turn. `content` None (OpenAI tool-call messages) is read as empty."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return "" if value is None else value

    @field_validator("content")
    @classmethod
    def _valid_unicode(cls, value: str) -> str:
        return check_text(value, "message content")

    def to_template(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [c.to_template() for c in self.tool_calls]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        if self.name is not None:
            out["name"] = self.name
        return out


class Tool(BaseModel):
    """A function the model may call: name, description and a JSON schema of its arguments."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})

    def to_template(self) -> dict[str, Any]:
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": self.parameters}}


class ResponseFormat(BaseModel):
    """`text`, any JSON object (`json_object`), or JSON valid for `json_schema`."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: dict[str, Any] | None = None


class Request(BaseModel):
    """Messages, tools, response format, rewards (None: the decoder's own) and search settings of one call."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)
    messages: tuple[Message, ...] = Field(min_length=1)
    tools: tuple[Tool, ...] = ()
    tool_choice: str | dict[str, Any] = "auto"
    response_format: ResponseFormat | None = None
    rewards: RewardSum | None = None
    settings: dict[str, Any] = Field(default_factory=dict)  # DeALConfig overrides

    @classmethod
    def of(cls, prompt: Any, /, rewards: RewardLike = None, **settings: Any) -> Request:
        """From a string, a list of `{"role", "content", ...}` messages or `Message`s, or a `Request`."""
        settings = {k: v for k, v in settings.items() if v is not None}
        unknown = sorted(set(settings) - set(DeALConfig.model_fields) - {"sample"})
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(map(short_repr, unknown))}; "
                              f"the settings are: {', '.join(DeALConfig.model_fields)}")
        if isinstance(prompt, Request):
            update: dict[str, Any] = {"settings": {**prompt.settings, **settings}}
            if rewards is not None:
                update["rewards"] = as_reward_sum(rewards)
            return prompt.model_copy(update=update)
        try:
            reward_sum = None if rewards is None else as_reward_sum(rewards)
            return cls(messages=tuple(_messages(prompt)), rewards=reward_sum, settings=settings)
        except ValidationError as exc:
            raise PromptError(f"invalid request: {describe_validation_error(exc)}") from None

    @property
    def text(self) -> str:
        """What rewards see as "the prompt": the last user message (else the last message)."""
        users = [m.content for m in self.messages if m.role == "user"]
        return users[-1] if users else self.messages[-1].content

    def config(self, base: DeALConfig) -> DeALConfig:
        return make_config(base, **self.settings)

    def check_supported(self) -> None:
        """Tool calls and structured output are carried by the request; the decoder enforces neither yet."""
        if self.response_format is not None and self.response_format.type != "text":
            raise ConfigError("response_format is not supported by this version of DeAL yet: remove it, or add "
                              "a JsonSchema reward to steer the output towards JSON")
        if self.tool_choice not in ("auto", "none"):
            raise ConfigError(f"tool_choice={short_repr(self.tool_choice)} needs enforced tool calls, which this "
                              "version of DeAL does not provide yet: use tool_choice='auto'")


def _messages(prompt: Any) -> list[Message]:
    from deal_core.prompts import normalize_messages

    if isinstance(prompt, Sequence) and not isinstance(prompt, (str, bytes)) and prompt and \
            all(isinstance(m, Message) for m in prompt):
        messages = list(prompt)
        if not any(m.content.strip() or m.tool_calls for m in messages):
            raise PromptError("prompt has no message with text: pass at least one non-blank message")
        return messages
    raw = list(prompt) if isinstance(prompt, Sequence) and not isinstance(prompt, (str, bytes)) else None
    out = []
    for i, message in enumerate(normalize_messages(prompt)):
        extra = raw[i] if raw is not None and isinstance(raw[i], Mapping) else {}
        calls = extra.get("tool_calls") or ()
        if not isinstance(calls, Sequence) or isinstance(calls, (str, bytes)):
            raise PromptError(f"message {i} tool_calls must be a list of calls, got {short_repr(calls)}")
        role = message["role"]
        if role not in get_args(Role):
            raise PromptError(f"message {i} role {role!r} is not one of {', '.join(get_args(Role))}")
        for key in ("tool_call_id", "name"):
            if extra.get(key) is not None and not isinstance(extra[key], str):
                raise PromptError(f"message {i} {key} must be a string, got {short_repr(extra[key])}")
            check_text(extra.get(key) or "", f"message {i} {key}")
        out.append(Message(role=role, content=message["content"], tool_calls=tuple(map(_tool_call, calls)),
                           tool_call_id=extra.get("tool_call_id"), name=extra.get("name")))
    return out


def _tool_call(call: Any) -> ToolCall:
    """An OpenAI tool call (`{"id", "function": {"name", "arguments": "<json>"}}`) or a flat one."""
    if isinstance(call, ToolCall):
        return call
    if not isinstance(call, Mapping):
        raise PromptError(f"a tool call must be a mapping with 'name' and 'arguments', got {type(call).__name__}")
    body = call.get("function", call)
    if not isinstance(body, Mapping) or not isinstance(body.get("name"), str) or not body["name"]:
        raise PromptError(f"a tool call needs a function name, got {short_repr(call)}")
    name = check_text(body["name"], "tool call name")
    arguments = body.get("arguments") or {}
    if isinstance(arguments, str):
        try:
            arguments = json.loads(check_text(arguments, f"tool call {name!r} arguments"))
        except (ValueError, RecursionError) as exc:
            raise PromptError(f"tool call {name!r}: arguments are not a readable JSON object ({exc})") from None
    if not isinstance(arguments, Mapping):
        raise PromptError(f"tool call {name!r}: arguments must be a JSON object")
    try:
        check_text(json.dumps(arguments, ensure_ascii=False), f"tool call {name!r} arguments")
    except (TypeError, ValueError, RecursionError) as exc:
        raise PromptError(f"tool call {name!r}: arguments must be plain JSON ({exc})") from None
    return ToolCall(id=str(call.get("id") or ""), name=name, arguments=dict(arguments))
