"""LlamaIndex → deal_core: the text of LlamaIndex's outputs.

Importing this module registers LlamaIndex's chat messages, chat/completion responses and query responses with
`deal_core.rewards.text_of`, so a reward scores them directly.
"""

from __future__ import annotations

from llama_index.core.base.llms.types import ChatMessage, ChatResponse, CompletionResponse
from llama_index.core.base.response.schema import Response

from deal_core.rewards import text_of


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
