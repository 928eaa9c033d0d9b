"""`DeALLLM`: a LlamaIndex `FunctionCallingLLM` that decodes with DeAL (tool calls enforced during the search)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    ChatResponseAsyncGen,
    ChatResponseGen,
    CompletionResponse,
    CompletionResponseAsyncGen,
    CompletionResponseGen,
    LLMMetadata,
    MessageRole,
    TextBlock,
    ToolCallBlock,
)
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.llms.llm import ToolSelection
from pydantic import Field

from deal_core.config import DeALConfig
from deal_core.params import DeALParams, call_settings, output_args, result_metadata
from deal_core.request import Request
from deal_core.result import GenerationResult
from llamaindex_deal.convert import to_messages
from llamaindex_deal.streaming import astream_responses, stream_responses

DEFAULT_NUM_OUTPUT: int = DeALConfig.model_fields["max_new_tokens"].default


if TYPE_CHECKING:
    from llama_index.core.tools.types import BaseTool


class DeALLLM(DeALParams, FunctionCallingLLM):
    """LlamaIndex LLM over a local transformers model, aligned at decoding time by rewards.

    ```python
    from llama_index.core import Settings
    from deal_core.rewards import Safety
    from llamaindex_deal import DeALLLM

    Settings.llm = DeALLLM(rewards=[Safety()], max_tokens=96)
    ```
    Per-call keyword arguments (`rewards=`, `top_k=`, `reward_weight=`, …) override the fields. Construction loads
    nothing; instances naming the same model share one copy of the weights. As a function-calling LLM it serves
    `FunctionAgent`/`AgentWorkflow` with native tool calls, and `structured_predict`/`as_structured_llm` through a
    forced call whose arguments are constrained to the output class's schema. Every call converts its prompt or
    messages and arguments into one `deal_core.request.Request` (`_completion_request`, `_chat_request`).
    """

    max_retries: int = Field(0, description="Accepted for API compatibility; a local model does not retry.")
    tool_choice: str | None = Field(None, description=(
        "Tool choice of chat-with-tools calls that set none ('auto' when None). FunctionAgent sets one only on its "
        "first turn (initial_tool_choice): with tool_choice='none' the turns after the tool results answer in "
        "words, which small models otherwise rarely decide to do."))

    @classmethod
    def class_name(cls) -> str:
        return "DeALLLM"

    @property
    def metadata(self) -> LLMMetadata:
        lm = self._decoder().lm
        return LLMMetadata(context_window=lm.context_window, num_output=self.max_tokens or DEFAULT_NUM_OUTPUT,
                           is_chat_model=lm.has_chat_template, is_function_calling_model=lm.has_chat_template,
                           model_name=self.model_name)

    # -- tools -------------------------------------------------------------------------------------------------
    def _prepare_chat_with_tools(self, tools: Sequence[BaseTool], user_msg: str | ChatMessage | None = None,
                                 chat_history: list[ChatMessage] | None = None, verbose: bool = False,
                                 allow_parallel_tool_calls: bool = False, tool_required: bool = False,
                                 tool_choice: str | dict[str, Any] | None = None, **kwargs: Any) -> dict[str, Any]:
        """The chat call's arguments: messages, the tools in OpenAI's shape and the tool choice."""
        messages = list(chat_history or [])
        if user_msg is not None:
            messages.append(ChatMessage(role=MessageRole.USER, content=user_msg) if isinstance(user_msg, str)
                            else user_msg)
        out: dict[str, Any] = {"messages": messages, **kwargs}
        if tools:
            out["tools"] = [t.metadata.to_openai_tool(skip_length_check=True) for t in tools]
            out["tool_choice"] = tool_choice or ("required" if tool_required else self.tool_choice or "auto")
            out["parallel_tool_calls"] = allow_parallel_tool_calls
        return out

    def get_tool_calls_from_response(self, response: ChatResponse, error_on_no_tool_call: bool = True,
                                     **kwargs: Any) -> list[ToolSelection]:
        calls = [b for b in response.message.blocks if isinstance(b, ToolCallBlock)]
        if not calls and error_on_no_tool_call:
            raise ValueError("the response made no tool call: pass tool_required=True to force one")
        return [ToolSelection(tool_id=b.tool_call_id or "", tool_name=b.tool_name, tool_kwargs=b.tool_kwargs)
                for b in calls]

    # -- LlamaIndex → Request, GenerationResult → LlamaIndex --------------------------------------------------
    def _completion_request(self, prompt: str, formatted: bool, kwargs: dict[str, Any]) -> Request:
        """`user_text=` (a keyword argument): the user's own words inside a templated prompt, what rewards judge."""
        if not formatted and self.completion_to_prompt is not None:
            prompt = self.completion_to_prompt(prompt)
        kwargs = dict(kwargs)
        user_text = kwargs.pop("user_text", None)
        rewards, settings = call_settings(self, kwargs)
        if self.system_prompt:
            messages = [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": prompt}]
            return Request.of(messages, rewards, user_text=user_text, **settings)
        return Request.of(prompt, rewards, user_text=user_text, **settings)

    def _chat_request(self, messages: Sequence[ChatMessage], kwargs: dict[str, Any]) -> Request:
        kwargs = dict(kwargs)
        output = output_args(kwargs)
        user_text = kwargs.pop("user_text", None)
        rewards, settings = call_settings(self, kwargs)
        return Request.of(to_messages(messages, self.system_prompt), rewards, user_text=user_text, **output,
                          **settings)

    def _extra(self, result: GenerationResult) -> dict[str, Any]:
        """Response metadata; calls the budget cut are under "invalid_tool_calls" (never ToolCallBlocks)."""
        extra = {**result_metadata(result, self.model_name), "usage": result.usage.model_dump()}
        if result.invalid_tool_calls:
            extra["invalid_tool_calls"] = result.invalid_tool_calls
        return extra

    def _completion(self, result: GenerationResult, delta: str | None = None) -> CompletionResponse:
        return CompletionResponse(text=result.text, delta=delta, additional_kwargs=self._extra(result))

    def _chat_response(self, result: GenerationResult, delta: str | None = None) -> ChatResponse:
        blocks: list[Any] = [TextBlock(text=result.text)]
        blocks += [ToolCallBlock(tool_call_id=c.id, tool_name=c.name, tool_kwargs=c.arguments)
                   for c in result.tool_calls]
        # also where parts of LlamaIndex read calls (structured streaming, token counting): OpenAI's shape
        calls = {"tool_calls": [c.to_openai() for c in result.tool_calls]} if result.tool_calls else {}
        message = ChatMessage(role=MessageRole.ASSISTANT, blocks=blocks, additional_kwargs=calls)
        return ChatResponse(message=message, delta=delta, additional_kwargs=self._extra(result))

    @staticmethod
    def _completion_delta(text: str, delta: str) -> CompletionResponse:
        return CompletionResponse(text=text, delta=delta)

    @staticmethod
    def _chat_delta(text: str, delta: str) -> ChatResponse:
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=delta)

    # -- completion ------------------------------------------------------------------------------------------
    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return self._completion(self._decoder().generate(self._completion_request(prompt, formatted, kwargs)))

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        stream = self._decoder().stream(self._completion_request(prompt, formatted, kwargs))
        return stream_responses(stream, self._completion_delta, partial(self._completion, delta=""))

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return self._completion(await self._decoder().agenerate(self._completion_request(prompt, formatted, kwargs)))

    @llm_completion_callback()
    async def astream_complete(self, prompt: str, formatted: bool = False,
                               **kwargs: Any) -> CompletionResponseAsyncGen:
        stream = await self._decoder().astream(self._completion_request(prompt, formatted, kwargs))
        return astream_responses(stream, self._completion_delta, partial(self._completion, delta=""))

    # -- chat ------------------------------------------------------------------------------------------------
    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._chat_response(self._decoder().generate(self._chat_request(messages, kwargs)))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        stream = self._decoder().stream(self._chat_request(messages, kwargs))
        return stream_responses(stream, self._chat_delta, partial(self._chat_response, delta=""))

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._chat_response(await self._decoder().agenerate(self._chat_request(messages, kwargs)))

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        stream = await self._decoder().astream(self._chat_request(messages, kwargs))
        return astream_responses(stream, self._chat_delta, partial(self._chat_response, delta=""))
