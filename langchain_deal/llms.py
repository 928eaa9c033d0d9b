"""`DeALLLM`: a LangChain text LLM that decodes with DeAL; a batch of prompts is one batched search."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseLLM
from langchain_core.outputs import Generation, GenerationChunk, LLMResult

from deal_core.aio import iterate_in_thread
from deal_core.params import DeALParams, result_metadata
from deal_core.result import GenerationResult


class DeALLLM(DeALParams, BaseLLM):
    """Text-in, text-out LLM aligned by rewards. Instruct models get their chat template (override with
    `use_chat_template=False` for raw completion). Loads lazily; instances share weights."""

    @property
    def _llm_type(self) -> str:
        return "deal"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return self._search_params()

    def _result(self, results: list[GenerationResult]) -> LLMResult:
        generations = [[Generation(text=r.text, generation_info=result_metadata(r, self.model_name))]
                       for r in results]
        usage = {"prompt_tokens": sum(r.prompt_tokens for r in results),
                 "completion_tokens": sum(len(r.token_ids) for r in results)}
        return LLMResult(generations=generations, llm_output={"token_usage": usage, "model_name": self.model_name})

    def _generate(self, prompts: list[str], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> LLMResult:
        rewards, overrides = self._call_args(stop, kwargs)
        return self._result(self._decoder().generate_batch(prompts, rewards, **overrides))

    async def _agenerate(self, prompts: list[str], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any) -> LLMResult:
        rewards, overrides = self._call_args(stop, kwargs)
        return self._result(await self._decoder().agenerate_batch(prompts, rewards, **overrides))

    def _stream(self, prompt: str, stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[GenerationChunk]:
        rewards, overrides = self._call_args(stop, kwargs)
        stream = self._decoder().stream(prompt, rewards, **overrides)
        try:
            for delta in stream:
                chunk = GenerationChunk(text=delta)
                if run_manager:
                    run_manager.on_llm_new_token(delta, chunk=chunk)
                yield chunk
        finally:
            stream.close()
        yield GenerationChunk(text="", generation_info=result_metadata(stream.result, self.model_name))

    async def _astream(self, prompt: str, stop: list[str] | None = None,
                       run_manager: AsyncCallbackManagerForLLMRun | None = None,
                       **kwargs: Any) -> AsyncIterator[GenerationChunk]:
        rewards, overrides = self._call_args(stop, kwargs)
        stream = self._decoder().stream(prompt, rewards, **overrides)
        deltas = iterate_in_thread(lambda: stream)
        try:
            async for delta in deltas:
                chunk = GenerationChunk(text=delta)
                if run_manager:
                    await run_manager.on_llm_new_token(delta, chunk=chunk)
                yield chunk
        finally:
            await deltas.aclose()
        yield GenerationChunk(text="", generation_info=result_metadata(stream.result, self.model_name))
