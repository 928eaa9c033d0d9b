"""`ChatDeAL`: a LangChain chat model that decodes with DeAL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.chat_models import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field, SecretStr

from deal_core.params import DeALParams, call_settings, result_metadata, search_params
from deal_core.request import Request
from deal_core.result import GenerationResult
from langchain_deal.convert import search_overrides, to_messages
from langchain_deal.streaming import astream_chunks, stream_chunks


def _usage(result: GenerationResult) -> UsageMetadata:
    usage = result.usage
    return UsageMetadata(input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens,
                         total_tokens=usage.total_tokens)


class ChatDeAL(DeALParams, BaseChatModel):
    """Chat model over a local transformers LM, aligned at decoding time by rewards.

    ```python
    from langchain_deal import ChatDeAL
    from deal_core.rewards import Harmlessness, Keywords

    chat = ChatDeAL(rewards=[Harmlessness()], max_tokens=64)
    chat.bind(rewards=[Keywords(["dog", "park"])], reward_weight=3).invoke("Write about a dog.")
    ```
    Constructing it loads nothing; the weights load on first use and are shared between instances.
    Every call converts its messages and arguments into one `deal_core.request.Request` (`_request`).
    """

    # LangChain chat-model conventions (the standard test suite constructs every chat model with these)
    streaming: bool = Field(False, description="invoke() runs through stream(): callbacks get each committed token.")
    max_retries: int = Field(0, description="Accepted for API compatibility; a local model does not retry.")
    api_key: SecretStr | None = Field(None, exclude=True, description="Accepted for drop-in compatibility with "
                                      "hosted chat models; a local model needs no key and never sends it anywhere.")

    @property
    def _llm_type(self) -> str:
        return "deal-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return search_params(self)

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(ls_provider="deal", ls_model_name=kwargs.get("model") or self.model_name,
                                 ls_model_type="chat",
                                 ls_temperature=self.temperature or 0.0)
        if self.max_tokens:
            params["ls_max_tokens"] = self.max_tokens
        stops = stop or self.stop
        if stops:
            params["ls_stop"] = [stops] if isinstance(stops, str) else list(stops)
        return params

    # -- LangChain → Request, GenerationResult → LangChain ----------------------------------------------------
    def _request(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]) -> Request:
        rewards, settings = call_settings(self, search_overrides(stop, kwargs))
        return Request.of(to_messages(messages), rewards, **settings)

    def _result(self, result: GenerationResult) -> ChatResult:
        message = AIMessage(content=result.text, usage_metadata=_usage(result),
                            response_metadata=result_metadata(result, self.model_name))
        return ChatResult(generations=[ChatGeneration(message=message)])

    @staticmethod
    def _chunk(delta: str) -> ChatGenerationChunk:
        return ChatGenerationChunk(message=AIMessageChunk(content=delta))

    def _last_chunk(self, result: GenerationResult) -> ChatGenerationChunk:
        return ChatGenerationChunk(message=AIMessageChunk(
            content="", usage_metadata=_usage(result), chunk_position="last",
            response_metadata=result_metadata(result, self.model_name)))

    # -- the calls -------------------------------------------------------------------------------------------
    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        return self._result(self._decoder().generate(self._request(messages, stop, kwargs)))

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        return self._result(await self._decoder().agenerate(self._request(messages, stop, kwargs)))

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        return stream_chunks(lambda: self._decoder().stream(self._request(messages, stop, kwargs)),
                             self._chunk, self._last_chunk, run_manager)

    def _astream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                 run_manager: AsyncCallbackManagerForLLMRun | None = None,
                 **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        return astream_chunks(lambda: self._decoder().astream(self._request(messages, stop, kwargs)),
                              self._chunk, self._last_chunk, run_manager)
