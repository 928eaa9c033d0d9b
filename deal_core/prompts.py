"""Turning user prompts into token ids: chat template, alignment prompt (start-state adaptation), assistant prefill."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

from deal_core.backends.base import Backend
from deal_core.errors import PromptError

Message = Mapping[str, Any]
PromptLike = Union[str, Sequence[Message]]


@dataclass(frozen=True)
class EncodedPrompt:
    ids: list[int]
    request: str  # the text rewards see as "the prompt": the last user message


def _message_text(message: Message) -> str:
    content = message.get("content", "")
    if isinstance(content, str):
        return content
    # OpenAI-style content blocks: keep the text parts
    return "".join(part.get("text", "") for part in content if isinstance(part, Mapping))


def normalize_messages(prompt: PromptLike) -> list[dict[str, str]]:
    if isinstance(prompt, str):
        if not prompt.strip():
            raise PromptError("prompt is empty: pass a non-blank string or a list of chat messages")
        return [{"role": "user", "content": prompt}]
    messages = []
    for i, message in enumerate(prompt):
        if not isinstance(message, Mapping) or "role" not in message:
            raise PromptError(f"message {i} must be a mapping with 'role' and 'content', got {message!r}")
        messages.append({"role": str(message["role"]), "content": _message_text(message)})
    if not messages or not any(m["content"].strip() for m in messages):
        raise PromptError("prompt has no message with text: pass at least one non-blank message")
    return messages


def encode_prompt(
    lm: Backend,
    prompt: PromptLike,
    alignment_prompt: str | None = None,
    use_chat_template: bool | None = None,
) -> EncodedPrompt:
    """Token ids for the model to continue. A trailing assistant message is continued, not closed (prefill)."""
    messages = normalize_messages(prompt)
    if alignment_prompt:
        if messages[0]["role"] == "system":
            messages[0] = {"role": "system", "content": f"{alignment_prompt}\n\n{messages[0]['content']}"}
        else:
            messages.insert(0, {"role": "system", "content": alignment_prompt})
    users = [m["content"] for m in messages if m["role"] == "user"]
    request = users[-1] if users else messages[-1]["content"]
    prefill = messages[-1]["role"] == "assistant"
    chat = lm.has_chat_template if use_chat_template is None else use_chat_template
    if chat:
        if not lm.has_chat_template:
            raise PromptError(f"model {lm.name!r} has no chat template; pass use_chat_template=False")
        ids = lm.encode_chat(messages, continue_final=prefill)
    else:
        ids = lm.encode_text("\n\n".join(m["content"] for m in messages))
    return EncodedPrompt(ids=list(ids), request=request)
