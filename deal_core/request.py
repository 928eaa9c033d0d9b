"""One framework-neutral request: what the CLI, the LangChain and LlamaIndex wrappers (and an HTTP server) build.

    Request(messages=[Message(role="user", content="Hi")], rewards=Keywords(["hi"]), settings={"top_k": 5})

Every field is validated here, as untrusted input: roles, text (no lone surrogates), tool names and schemas,
settings (by `DeALConfig`). Wrappers only convert their framework's objects into these.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from deal_core.config import DeALConfig, make_config
from deal_core.errors import ConfigError, DeALError, PromptError, check_text, describe_validation_error, short_repr
from deal_core.messages import ToolCall, normalize_messages
from deal_core.rewards.base import RewardLike, RewardSum, as_reward_sum

Role = Literal["system", "developer", "user", "assistant", "tool"]


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


_ANNOTATIONS = frozenset({"title", "description", "$comment"})


class Tool(BaseModel):
    """A function the model may call: name, description and a JSON schema of its arguments."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})

    @classmethod
    def of(cls, spec: Any) -> Tool:
        """From a `Tool`, OpenAI's `{"type": "function", "function": {...}}` or a flat `{"name", "description",
        "parameters"}`."""
        if isinstance(spec, Tool):
            return spec
        if not isinstance(spec, Mapping):
            raise ValueError(f"a tool must be a mapping such as {{'type': 'function', 'function': {{'name': ...}}}}, "
                             f"got {type(spec).__name__}")
        if spec.get("type", "function") != "function":
            raise ValueError(f"only function tools are supported ({{'type': 'function', 'function': {{'name': ...}}}}),"
                             f" got type {short_repr(spec.get('type'))}")
        if "function" in spec:
            if not isinstance(spec["function"], Mapping):
                raise ValueError(f"'function' must be a mapping with 'name', 'description' and 'parameters', got "
                                 f"{short_repr(spec['function'])}")
            spec = spec["function"]
        parameters = spec.get("parameters") or {"type": "object", "properties": {}}
        return cls(name=spec.get("name"), description=spec.get("description") or "", parameters=parameters)

    def same_as(self, other: Tool) -> bool:
        """The same function: same name and the same schema up to annotations (titles, descriptions, examples)."""
        def bare(node: Any) -> Any:
            if isinstance(node, dict):
                return {k: bare(v) for k, v in node.items() if k not in _ANNOTATIONS or not isinstance(v, str)}
            return [bare(v) for v in node] if isinstance(node, list) else node

        return self.name == other.name and bare(self.parameters) == bare(other.parameters)

    @field_validator("parameters")
    @classmethod
    def _schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        _check_schema(value, "parameters")
        if value.get("type", "object") != "object":
            raise ValueError(f"parameters must be a JSON schema of type 'object', got type {value.get('type')!r}")
        return value

    def to_template(self) -> dict[str, Any]:
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": self.parameters}}


class ResponseFormat(BaseModel):
    """`text`, any JSON object (`json_object`), or JSON valid for `json_schema`."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    type: Literal["text", "json_object", "json_schema"] = "text"
    json_schema: dict[str, Any] | None = None

    @classmethod
    def of(cls, spec: Any) -> ResponseFormat | None:
        """From a `ResponseFormat` or OpenAI's `{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}`
        (a bare schema under `json_schema` is accepted too), `{"type": "json_object"}`, `{"type": "text"}`."""
        if spec is None or isinstance(spec, ResponseFormat):
            return spec
        if not isinstance(spec, Mapping):
            raise ValueError(f"response_format must be a mapping with a 'type', got {type(spec).__name__}")
        schema = spec.get("json_schema")
        if isinstance(schema, Mapping) and isinstance(schema.get("schema"), Mapping) and \
                not isinstance(schema.get("properties"), Mapping):
            schema = schema["schema"]  # OpenAI's wrapper: name, schema, strict
        return cls(type=spec.get("type", "text"), json_schema=schema)

    @model_validator(mode="after")
    def _schema(self) -> ResponseFormat:
        if self.type == "json_schema":
            if not self.json_schema:
                raise ValueError("response_format json_schema needs a schema: pass json_schema={...}")
            _check_schema(self.json_schema, "json_schema")
        return self


def _check_schema(schema: Any, what: str) -> None:
    from deal_core.rewards.schema_guard import check_schema_shape

    try:
        check_schema_shape(schema)
        json.dumps(schema)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"{what}: {exc}") from None


def tool_choice_of(choice: Any) -> tuple[str, str | None]:
    """Normalize a tool choice to (mode, tool name): `auto`, `none`, `required` (also `any`, True), a tool's name,
    or a dict in OpenAI's (`{"type": "function", "function": {"name": ...}}`) or Anthropic's shape."""
    if choice is None or choice == "auto":
        return "auto", None
    if choice is True or choice in ("any", "required"):
        return "required", None
    if choice is False or choice == "none":
        return "none", None
    if isinstance(choice, str) and choice:
        return "required", choice
    if isinstance(choice, Mapping):
        kind = choice.get("type")
        if kind in ("auto", "none", "any", "required") and set(choice) <= {"type", "disable_parallel_tool_use"}:
            return tool_choice_of(kind)
        body = choice.get("function") if kind == "function" and "function" in choice else choice
        name = body.get("name") if isinstance(body, Mapping) else None
        if kind in ("function", "tool") and isinstance(name, str) and name:
            return "required", name
    raise ValueError(f"tool_choice {short_repr(choice)} is not one of 'auto', 'none', 'required'/'any', a tool "
                     "name or {'type': 'function', 'function': {'name': ...}}")


class Request(BaseModel):
    """Messages, tools, response format, rewards (None: the decoder's own) and search settings of one call."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)
    messages: tuple[Message, ...] = Field(min_length=1)
    tools: tuple[Tool, ...] = ()
    tool_choice: Any = "auto"
    parallel_tool_calls: bool = True
    response_format: ResponseFormat | None = None
    rewards: RewardSum | None = None
    settings: dict[str, Any] = Field(default_factory=dict)  # DeALConfig overrides
    # The user's own words when the last user message carries more (retrieved passages, a template): what rewards
    # judge as the request (`text`). Set by code that builds the prompt (GroundedQueryEngine), never by HTTP bodies.
    user_text: str | None = Field(None, min_length=1)

    @field_validator("user_text")
    @classmethod
    def _user_text(cls, value: str | None) -> str | None:
        return None if value is None else check_text(value, "user_text")

    @classmethod
    def of(cls, prompt: Any, /, rewards: RewardLike = None, *, tools: Sequence[Any] | None = None,
           tool_choice: Any = None, parallel_tool_calls: bool | None = None, response_format: Any = None,
           user_text: str | None = None, **settings: Any) -> Request:
        """From a string, a list of `{"role", "content", ...}` messages or `Message`s, or a `Request`; tools and
        response formats in OpenAI's shapes (`Tool.of`, `ResponseFormat.of`, `tool_choice_of`); user_text: the field"""
        settings = {k: v for k, v in settings.items() if v is not None}
        if isinstance(prompt, Request) and rewards is None and not settings and tools is None and \
                tool_choice is None and parallel_tool_calls is None and response_format is None:
            return prompt  # validated when it was made: a Request is never checked twice
        unknown = sorted(set(settings) - set(DeALConfig.model_fields) - {"sample"})
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(map(short_repr, unknown))}; "
                              f"the settings are: {', '.join(DeALConfig.model_fields)}")
        output: dict[str, Any] = {}
        try:
            if tools is not None:  # the same tool given twice (a pydantic model and its schema) counts once
                unique: dict[str, Tool] = {}
                for tool in map(_indexed_tool, range(len(tools)), tools):
                    if tool.name not in unique or not unique[tool.name].same_as(tool):
                        unique[f"{tool.name}#{len(unique)}" if tool.name in unique else tool.name] = tool
                output["tools"] = tuple(unique.values())
            if tool_choice is not None:
                output["tool_choice"] = tool_choice
            if parallel_tool_calls is not None:
                output["parallel_tool_calls"] = parallel_tool_calls
            if response_format is not None:
                output["response_format"] = ResponseFormat.of(response_format)
            if user_text is not None:
                output["user_text"] = user_text
            if isinstance(prompt, Request):
                update: dict[str, Any] = {"settings": {**prompt.settings, **settings}, **output}
                if rewards is not None:
                    update["rewards"] = as_reward_sum(rewards)
                return cls.model_validate({**dict(prompt), **update})
            reward_sum = None if rewards is None else as_reward_sum(rewards)
            return cls(messages=tuple(_messages(prompt)), rewards=reward_sum, settings=settings, **output)
        except ValidationError as exc:
            raise PromptError(f"invalid request: {describe_validation_error(exc)}") from None
        except ValueError as exc:
            if isinstance(exc, DeALError):  # already typed (a reward that is no reward, a prompt error, ...)
                raise
            raise PromptError(f"invalid request: {exc}") from None

    @property
    def text(self) -> str:
        """What rewards see as "the prompt": the user's own words (`user_text`) when given, else the last user
        message (else the last message). Never a system prompt or tool results."""
        if self.user_text is not None:
            return self.user_text
        users = [m.content for m in self.messages if m.role == "user"]
        return users[-1] if users else self.messages[-1].content

    def config(self, base: DeALConfig) -> DeALConfig:
        return make_config(base, **self.settings)

    @property
    def choice(self) -> tuple[str, str | None]:
        """The tool choice as (mode, name): mode `auto`, `none` or `required`; a name forces that tool."""
        return tool_choice_of(self.tool_choice)

    @model_validator(mode="after")
    def _consistent(self) -> Request:
        mode, name = tool_choice_of(self.tool_choice)  # raises on an unknown choice
        names = [t.name for t in self.tools]
        if len(set(names)) != len(names):
            raise ValueError(f"two different tools share a name "
                             f"({', '.join(sorted({n for n in names if names.count(n) > 1}))}): give each its own name")
        if mode == "required" and not self.tools:
            raise ValueError(f"tool_choice {short_repr(self.tool_choice)} needs tools: pass tools or use 'auto'")
        if name is not None and name not in names:
            raise ValueError(f"tool_choice names {name!r}, which is not one of the tools ({', '.join(names)})")
        if self.tools and mode != "none" and self.response_format is not None and \
                self.response_format.type != "text":
            raise ValueError("response_format and tools cannot both constrain one answer: drop one of them "
                             "(structured output through a tool: tool_choice=<the tool's name>)")
        calls: set[str] = set()
        made_call = False
        for i, m in enumerate(self.messages):
            if m.role == "assistant" and m.tool_calls:
                made_call = True
                calls.update(c.id for c in m.tool_calls if c.id)
            if m.role == "tool":
                if not made_call:
                    raise ValueError(f"message {i} is a tool result, but no assistant message before it made a tool "
                                     "call: put the assistant message with its tool_calls before the results")
                if m.tool_call_id and calls and m.tool_call_id not in calls:
                    raise ValueError(f"message {i} answers tool call {m.tool_call_id!r}, which no earlier assistant "
                                     f"message made (calls: {', '.join(sorted(calls))}); fix its tool_call_id")
        return self

def _indexed_tool(i: int, spec: Any) -> Tool:
    try:
        return Tool.of(spec)
    except ValidationError as exc:
        raise ValueError(f"tools[{i}]: {describe_validation_error(exc)}") from None
    except ValueError as exc:
        raise ValueError(f"tools[{i}]: {exc}") from None


def _messages(prompt: Any) -> list[Message]:
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
