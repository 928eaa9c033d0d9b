"""LangChain → `deal_core.request`: messages (with tool calls and tool results), per-call arguments, output text.

Importing this module registers LangChain's messages and generations with `deal_core.rewards.text_of`, so a reward
scores them directly: `prompt | chat | Safety()`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import Generation
from pydantic import ValidationError

from deal_core.errors import PromptError, describe_validation_error
from deal_core.request import Message, ToolCall
from deal_core.rewards import text_of

# LangChain's own per-call arguments, which reach `_generate`/`_stream` beside the search settings.
_LANGCHAIN_ARGS = frozenset({"run_name", "callbacks", "tags", "metadata"})
_CHAT_ROLES = {"human": "user", "ai": "assistant"}  # ChatMessage roles spelt the LangChain way
# The run metadata key a chain sets to name the user's own words inside a templated prompt (RAG), for the rewards
USER_TEXT_KEY = "deal_user_text"


def _role(message: BaseMessage) -> str:
    if isinstance(message, AIMessage):
        return "assistant"
    if isinstance(message, HumanMessage):
        return "user"
    if isinstance(message, SystemMessage):
        return "system"
    if isinstance(message, (ToolMessage, FunctionMessage)):
        return "tool"
    if isinstance(message, ChatMessage):
        return _CHAT_ROLES.get(message.role, message.role)
    return "user"


def _message(message: BaseMessage) -> Message:
    role = _role(message)
    calls = tuple(ToolCall(id=call.get("id") or "", name=call["name"], arguments=call.get("args") or {})
                  for call in (message.tool_calls if isinstance(message, AIMessage) else ()))
    tool_call_id = message.tool_call_id if isinstance(message, ToolMessage) else None
    name = message.name if role == "tool" else None
    return Message(role=role, content=str(message.text), tool_calls=calls, tool_call_id=tool_call_id, name=name)


def to_messages(messages: Sequence[BaseMessage]) -> list[Message]:
    """LangChain messages as request messages: roles, text, an AI message's `tool_calls` (`{"name", "args",
    "id"}`), a tool message's `tool_call_id` and name."""
    try:
        return [_message(m) for m in messages]
    except ValidationError as exc:
        raise PromptError(f"invalid message: {describe_validation_error(exc)}") from None


def search_overrides(stop: list[str] | str | None, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The search settings among a LangChain call's arguments: LangChain's own (`ls_*`, `callbacks`, `tags`,
    `metadata`, `run_name`) are dropped; `stop` is LangChain's separate argument."""
    overrides = {k: v for k, v in kwargs.items() if not (k.startswith("ls_") or k in _LANGCHAIN_ARGS)}
    if stop is not None:
        overrides["stop"] = stop
    return overrides


def user_text_of(kwargs: dict[str, Any], run_manager: Any = None) -> Any:
    """The user's own words, what rewards judge as the request, where a template wraps them in more (retrieved
    passages): the call argument `user_text` (popped from `kwargs`), else the run's metadata `deal_user_text`
    (`chain.invoke(x, config={"metadata": {"deal_user_text": question}})`, which LangChain passes down to every
    model the chain calls), else None (the last user message). Checked by `Request` like any field."""
    user_text = kwargs.pop("user_text", None)
    if user_text is None and run_manager is not None:
        user_text = (getattr(run_manager, "metadata", None) or {}).get(USER_TEXT_KEY)
    return user_text


def lift_user_text(config: Mapping[str, Any] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    """`kwargs` with `user_text` from `config`'s metadata (`deal_user_text`) when the call names none: LangChain's
    `stream`/`astream` hand `_stream` no run manager, so the metadata is read where the config still is."""
    metadata = (config or {}).get("metadata") or {}
    if kwargs.get("user_text") is None and USER_TEXT_KEY in metadata:
        return {**kwargs, "user_text": metadata[USER_TEXT_KEY]}
    return kwargs


@text_of.register(BaseMessage)
def _message_text(output: BaseMessage) -> str:
    return str(output.text)


@text_of.register(Generation)
def _generation_text(output: Generation) -> str:
    return output.text
