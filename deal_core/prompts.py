"""Turning user prompts into token ids: chat template, alignment prompt (start-state adaptation), assistant prefill."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

from deal_core.backends.base import Backend
from deal_core.errors import PromptError, check_text, short_repr

if TYPE_CHECKING:
    from deal_core.request import Request

Message = Mapping[str, Any]
PromptLike = Union[str, Sequence[Message]]


@dataclass(frozen=True)
class EncodedPrompt:
    ids: list[int]
    request: str  # the text rewards see as "the prompt": the last user message


def _message_text(i: int, message: Message) -> str:
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


def encode_prompt(
    lm: Backend,
    prompt: PromptLike | Request,
    alignment_prompt: str | None = None,
    use_chat_template: bool | None = None,
) -> EncodedPrompt:
    """Token ids for the model to continue. A trailing assistant message is continued, not closed (prefill).
    The request's tools are rendered by the model's chat template."""
    from deal_core.request import Message, Request

    request = Request.of(prompt)
    messages = list(request.messages)
    if alignment_prompt:
        if messages[0].role == "system":
            messages[0] = messages[0].model_copy(update={"content": f"{alignment_prompt}\n\n{messages[0].content}"})
        else:
            messages.insert(0, Message(role="system", content=alignment_prompt))
    prefill = messages[-1].role == "assistant" and not messages[-1].tool_calls
    chat = lm.has_chat_template if use_chat_template is None else use_chat_template
    if chat:
        if not lm.has_chat_template:
            raise PromptError(f"model {lm.name!r} has no chat template; pass use_chat_template=False")
        ids = lm.encode_chat([m.to_template() for m in messages], continue_final=prefill,
                             tools=[t.to_template() for t in request.tools] or None)
    else:
        if request.tools or any(m.tool_calls for m in messages):
            raise PromptError("tools and tool calls need a chat template; this call has none "
                              "(use_chat_template=False or a model without one): drop them or use a chat model")
        ids = lm.encode_text("\n\n".join(m.content for m in messages))
    return EncodedPrompt(ids=list(ids), request=request.text)
