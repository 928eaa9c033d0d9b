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

from deal_core.aio import iterate_in_thread
from deal_core.params import DeALParams, result_metadata
from deal_core.result import GenerationResult

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool", "function": "tool"}


def to_chat_messages(messages: list[BaseMessage]) -> list[dict[str, str]]:
    out = []
    for m in messages:
        role = _ROLES.get(m.type, m.type if m.type in ("user", "assistant", "system") else "user")
        if m.type == "chat":
            role = getattr(m, "role", "user")
        out.append({"role": role, "content": m.text})
    return out


def _usage(result: GenerationResult) -> UsageMetadata:
    output = len(result.token_ids)
    return UsageMetadata(input_tokens=result.prompt_tokens, output_tokens=output,
                         total_tokens=result.prompt_tokens + output)


class ChatDeAL(DeALParams, BaseChatModel):
    """Chat model over a local transformers LM, aligned at decoding time by rewards.

    ```python
    from langchain_deal import ChatDeAL
    from deal_core.rewards import Harmlessness, Keywords

    chat = ChatDeAL(rewards=[Harmlessness()], max_tokens=64)
    chat.bind(rewards=[Keywords(["dog", "park"])], reward_weight=3).invoke("Write about a dog.")
    ```
    Constructing it loads nothing; the weights load on first use and are shared between instances.
    """

    # LangChain chat-model conventions (the standard test suite constructs every chat model with both)
    streaming: bool = Field(False, description="invoke() runs through stream(): callbacks get each committed token.")
    api_key: SecretStr | None = Field(None, exclude=True, description="Accepted for drop-in compatibility with "
                                      "hosted chat models; a local model needs no key and never sends it anywhere.")

    @property
    def _llm_type(self) -> str:
        return "deal-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return self._search_params()

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

    def _message(self, result: GenerationResult) -> AIMessage:
        return AIMessage(content=result.text, usage_metadata=_usage(result),
                         response_metadata=result_metadata(result, self.model_name))

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        rewards, overrides = self._call_args(stop, kwargs)
        result = self._decoder().generate(to_chat_messages(messages), rewards, **overrides)
        return ChatResult(generations=[ChatGeneration(message=self._message(result))])

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        rewards, overrides = self._call_args(stop, kwargs)
        result = await self._decoder().agenerate(to_chat_messages(messages), rewards, **overrides)
        return ChatResult(generations=[ChatGeneration(message=self._message(result))])

    def _final_chunk(self, result: GenerationResult) -> ChatGenerationChunk:
        return ChatGenerationChunk(message=AIMessageChunk(
            content="", usage_metadata=_usage(result), chunk_position="last",
            response_metadata=result_metadata(result, self.model_name)))

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        rewards, overrides = self._call_args(stop, kwargs)
        stream = self._decoder().stream(to_chat_messages(messages), rewards, **overrides)
        try:
            for delta in stream:
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=delta))
                if run_manager:
                    run_manager.on_llm_new_token(delta, chunk=chunk)
                yield chunk
        finally:
            stream.close()
        yield self._final_chunk(stream.result)

    async def _astream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                       run_manager: AsyncCallbackManagerForLLMRun | None = None,
                       **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        rewards, overrides = self._call_args(stop, kwargs)
        stream = self._decoder().stream(to_chat_messages(messages), rewards, **overrides)
        deltas = iterate_in_thread(lambda: stream)
        try:
            async for delta in deltas:
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=delta))
                if run_manager:
                    await run_manager.on_llm_new_token(delta, chunk=chunk)
                yield chunk
        finally:
            await deltas.aclose()
        yield self._final_chunk(stream.result)
