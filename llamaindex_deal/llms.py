"""`DeALLLM`: a LlamaIndex `CustomLLM` that decodes with DeAL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

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
)
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.custom import CustomLLM

from deal_core.aio import iterate_in_thread
from deal_core.decoder import TextStream
from deal_core.params import DeALParams, result_metadata
from deal_core.prompts import PromptLike
from deal_core.result import GenerationResult

DEFAULT_NUM_OUTPUT = 128


def to_chat_messages(messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
    return [{"role": m.role.value if isinstance(m.role, MessageRole) else str(m.role), "content": m.content or ""}
            for m in messages]


class DeALLLM(DeALParams, CustomLLM):
    """LlamaIndex LLM over a local transformers model, aligned at decoding time by rewards.

    ```python
    from llama_index.core import Settings
    from deal_core.rewards import Harmlessness
    from llamaindex_deal import DeALLLM

    Settings.llm = DeALLLM(rewards=[Harmlessness()], max_tokens=96)
    ```
    Per-call keyword arguments (`rewards=`, `top_k=`, `reward_weight=`, …) override the fields. Construction loads
    nothing; instances naming the same model share one copy of the weights.
    """

    @classmethod
    def class_name(cls) -> str:
        return "DeALLLM"

    @property
    def metadata(self) -> LLMMetadata:
        lm = self._decoder().lm
        return LLMMetadata(context_window=lm.context_window, num_output=self.max_tokens or DEFAULT_NUM_OUTPUT,
                           is_chat_model=lm.has_chat_template, model_name=self.model_name)

    # -- shared plumbing -------------------------------------------------------------------------------------
    def _prompt(self, prompt: str, formatted: bool) -> PromptLike:
        if not formatted and self.completion_to_prompt is not None:
            prompt = self.completion_to_prompt(prompt)
        if self.system_prompt:
            return [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": prompt}]
        return prompt

    def _chat_prompt(self, messages: Sequence[ChatMessage]) -> PromptLike:
        chat = to_chat_messages(messages)
        if self.system_prompt and not any(m["role"] == "system" for m in chat):
            chat.insert(0, {"role": "system", "content": self.system_prompt})
        return chat

    def _extra(self, result: GenerationResult) -> dict[str, Any]:
        meta = result_metadata(result, self.model_name)
        meta["usage"] = {"prompt_tokens": result.prompt_tokens, "completion_tokens": len(result.token_ids)}
        return meta

    def _chat_response(self, result: GenerationResult) -> ChatResponse:
        return ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=result.text),
                            additional_kwargs=self._extra(result))

    def _stream(self, prompt: PromptLike, kwargs: dict[str, Any]) -> TextStream:
        rewards, overrides = self._call_args(None, kwargs)
        return self._decoder().stream(prompt, rewards, **overrides)

    @staticmethod
    def _cumulative(stream: TextStream) -> Iterator[tuple[str, str]]:
        """(text so far, delta) pairs; closing early stops the search."""
        text = ""
        try:
            for delta in stream:
                text += delta
                yield text, delta
        finally:
            stream.close()

    @staticmethod
    async def _acumulative(stream: TextStream) -> AsyncIterator[tuple[str, str]]:
        text = ""
        deltas = iterate_in_thread(lambda: stream)
        try:
            async for delta in deltas:
                text += delta
                yield text, delta
        finally:
            await deltas.aclose()

    # -- completion ------------------------------------------------------------------------------------------
    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        rewards, overrides = self._call_args(None, kwargs)
        result = self._decoder().generate(self._prompt(prompt, formatted), rewards, **overrides)
        return CompletionResponse(text=result.text, additional_kwargs=self._extra(result))

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponseGen:
        stream = self._stream(self._prompt(prompt, formatted), kwargs)

        def gen() -> CompletionResponseGen:
            for text, delta in self._cumulative(stream):
                yield CompletionResponse(text=text, delta=delta)
            yield CompletionResponse(text=stream.result.text, delta="", additional_kwargs=self._extra(stream.result))

        return gen()

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        rewards, overrides = self._call_args(None, kwargs)
        result = await self._decoder().agenerate(self._prompt(prompt, formatted), rewards, **overrides)
        return CompletionResponse(text=result.text, additional_kwargs=self._extra(result))

    @llm_completion_callback()
    async def astream_complete(self, prompt: str, formatted: bool = False,
                               **kwargs: Any) -> CompletionResponseAsyncGen:
        stream = self._stream(self._prompt(prompt, formatted), kwargs)

        async def gen() -> CompletionResponseAsyncGen:
            async for text, delta in self._acumulative(stream):
                yield CompletionResponse(text=text, delta=delta)
            yield CompletionResponse(text=stream.result.text, delta="", additional_kwargs=self._extra(stream.result))

        return gen()

    # -- chat ------------------------------------------------------------------------------------------------
    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        rewards, overrides = self._call_args(None, kwargs)
        return self._chat_response(self._decoder().generate(self._chat_prompt(messages), rewards, **overrides))

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseGen:
        stream = self._stream(self._chat_prompt(messages), kwargs)

        def gen() -> ChatResponseGen:
            for text, delta in self._cumulative(stream):
                yield ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=delta)
            final = self._chat_response(stream.result)
            final.delta = ""
            yield final

        return gen()

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        rewards, overrides = self._call_args(None, kwargs)
        result = await self._decoder().agenerate(self._chat_prompt(messages), rewards, **overrides)
        return self._chat_response(result)

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponseAsyncGen:
        stream = self._stream(self._chat_prompt(messages), kwargs)

        async def gen() -> ChatResponseAsyncGen:
            async for text, delta in self._acumulative(stream):
                yield ChatResponse(message=ChatMessage(role=MessageRole.ASSISTANT, content=text), delta=delta)
            final = self._chat_response(stream.result)
            final.delta = ""
            yield final

        return gen()
