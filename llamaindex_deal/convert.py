"""LlamaIndex → `deal_core.request`: chat messages (with tool calls and tool results) and output text.

Importing this module registers LlamaIndex's chat messages, chat/completion responses and query responses with
`deal_core.rewards.text_of`, so a reward scores them directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, ChatResponse, CompletionResponse, MessageRole, ToolCallBlock
from llama_index.core.base.response.schema import Response

from deal_core.request import Message, Request
from deal_core.rewards import text_of

_ROLES = {"chatbot": "assistant", "model": "assistant", "function": "tool"}  # LlamaIndex's other names


def _as_dict(message: ChatMessage) -> dict[str, Any]:
    """One message in the OpenAI shape `Request.of` reads: LlamaIndex keeps tool calls (`tool_calls`) and a tool
    result's `tool_call_id` and name in `additional_kwargs`."""
    role = message.role.value if isinstance(message.role, MessageRole) else str(message.role)
    role = _ROLES.get(role, role)
    extra = message.additional_kwargs
    out: dict[str, Any] = {"role": role, "content": message.content or ""}
    blocks = [b for b in message.blocks if isinstance(b, ToolCallBlock)]
    if blocks:  # LlamaIndex 0.14 keeps an assistant's calls as blocks
        out["tool_calls"] = [{"id": b.tool_call_id or "", "function": {"name": b.tool_name,
                                                                      "arguments": b.tool_kwargs}} for b in blocks]
    elif extra.get("tool_calls"):
        out["tool_calls"] = [c.model_dump() if hasattr(c, "model_dump") else c for c in extra["tool_calls"]]
    if role == "tool":
        out["tool_call_id"] = extra.get("tool_call_id")
        out["name"] = extra.get("name")
    return out


def to_messages(messages: Sequence[ChatMessage], system_prompt: str | None = None) -> list[Message]:
    """LlamaIndex chat messages as request messages; `system_prompt` goes first unless a system message is there."""
    chat = [_as_dict(m) for m in messages]
    if system_prompt and not any(m["role"] == "system" for m in chat):
        chat.insert(0, {"role": "system", "content": system_prompt})
    return list(Request.of(chat).messages)


@text_of.register(ChatMessage)
def _chat_message_text(output: ChatMessage) -> str:
    return output.content or ""


@text_of.register(ChatResponse)
def _chat_response_text(output: ChatResponse) -> str:
    return output.message.content or ""


@text_of.register(CompletionResponse)
def _completion_text(output: CompletionResponse) -> str:
    return output.text


@text_of.register(Response)
def _response_text(output: Response) -> str:
    return output.response or ""
