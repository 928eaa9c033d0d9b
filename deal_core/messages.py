"""A prompt as plain chat messages: a string, or OpenAI-style messages (text content, or text parts), checked as
untrusted input. `request.py` builds its `Message`s from these; `prompts.py` renders them for a model. `ToolCall`
is a call the assistant made (its OpenAI shape, `to_openai()`, is defined here once)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Union

from pydantic import BaseModel, ConfigDict, Field

from deal_core.errors import PromptError, check_text, short_repr

PromptLike = Union[str, Sequence[Mapping[str, Any]]]


def _message_text(i: int, message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if content is None:  # OpenAI tool-call assistant messages carry `content: null`
        return ""
    if isinstance(content, str):
        return check_text(content, f"message {i} content")
    if isinstance(content, Sequence) and not isinstance(content, (bytes, bytearray)):
        # OpenAI-style content blocks: text only (an image or audio part is an error, never silently dropped)
        kinds = {part.get("type", "text") for part in content if isinstance(part, Mapping)}
        if kinds - {"text"}:
            raise PromptError(f"message {i} has {', '.join(sorted(kinds - {'text'}))} content: this model reads "
                              "text only; send the text parts")
        parts = [part.get("text", "") if isinstance(part, Mapping) else part for part in content]
        if all(isinstance(part, str) for part in parts):
            return check_text("".join(parts), f"message {i} content")
    raise PromptError(
        f"message {i} content must be a string, a list of text blocks ({{'type': 'text', 'text': '...'}}) or None, "
        f"got {short_repr(content)}: pass the text as a string"
    )


def normalize_messages(prompt: PromptLike) -> list[dict[str, str]]:
    if isinstance(prompt, str):
        if not prompt.strip():
            raise PromptError("prompt is empty: pass a non-blank string or a list of chat messages")
        return [{"role": "user", "content": check_text(prompt, "prompt")}]
    if isinstance(prompt, Mapping):
        raise PromptError("prompt is a single chat message: pass a list of messages, e.g. [message]")
    if not isinstance(prompt, Sequence) or isinstance(prompt, (bytes, bytearray)):
        raise PromptError(f"prompt must be a string or a list of chat messages, got {type(prompt).__name__}")
    messages = []
    for i, message in enumerate(prompt):
        if not isinstance(message, Mapping) or "role" not in message:
            raise PromptError(f"message {i} must be a mapping with 'role' and 'content', got {short_repr(message)}")
        role = message["role"]
        if not isinstance(role, str) or not role:
            raise PromptError(f"message {i} role must be a non-empty string such as 'user', got {short_repr(role)}")
        messages.append({"role": check_text(role, f"message {i} role"), "content": _message_text(i, message)})
    if not messages or not any(m["content"].strip() for m in messages):
        raise PromptError("prompt has no message with text: pass at least one non-blank message")
    return messages


class ToolCall(BaseModel):
    """A call the assistant made: `arguments` is the parsed JSON object."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str
    name: str = Field(min_length=1, max_length=64)
    arguments: dict[str, Any] = Field(default_factory=dict)

    def to_template(self) -> dict[str, Any]:
        """The shape transformers chat templates expect (OpenAI's, with arguments as an object)."""
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}

    @property
    def arguments_json(self) -> str:
        """The arguments as the JSON string OpenAI clients and LangChain chunks carry (non-ASCII kept as is)."""
        return json.dumps(self.arguments, ensure_ascii=False)

    def to_openai(self) -> dict[str, Any]:
        """OpenAI's shape of a call: arguments as a JSON string."""
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments_json}}
