"""`DeALLLM`: a LangChain text LLM that decodes with DeAL; a batch of prompts is one batched search."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseLLM
from langchain_core.outputs import Generation, GenerationChunk, LLMResult
from langchain_core.runnables import RunnableConfig
from pydantic import Field

from deal_core.params import DeALParams, call_settings, result_metadata, search_params
from deal_core.request import Request
from deal_core.result import GenerationResult, Usage
from langchain_deal.convert import lift_user_text, search_overrides, user_text_of
from langchain_deal.streaming import astream_chunks, stream_chunks


class DeALLLM(DeALParams, BaseLLM):
    """Text-in, text-out LLM aligned by rewards. Instruct models get their chat template (override with
    `use_chat_template=False` for raw completion). Loads lazily; instances share weights.
    Every prompt of a call becomes one `deal_core.request.Request` (`_requests`). A prompt template that wraps the
    user's question in retrieved passages names the question for Safety as `ChatDeAL` does: `user_text=question`,
    or `config={"metadata": {"deal_user_text": question}}` (docs/safety.md, "RAG")."""

    max_retries: int = Field(0, description="Accepted for API compatibility; a local model does not retry.")

    @property
    def _llm_type(self) -> str:
        return "deal"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return search_params(self)

    # -- LangChain → Request, GenerationResult → LangChain ----------------------------------------------------
    def _requests(self, prompts: list[str], stop: list[str] | None, kwargs: dict[str, Any],
                  run_manager: Any = None) -> list[Request]:
        kwargs = dict(kwargs)
        user_text = user_text_of(kwargs, run_manager)
        rewards, settings = call_settings(self, search_overrides(stop, kwargs))
        return [Request.of(prompt, rewards, user_text=user_text, **settings) for prompt in prompts]

    def _result(self, results: list[GenerationResult]) -> LLMResult:
        generations = [[Generation(text=r.text, generation_info=result_metadata(r, self.model_name))]
                       for r in results]
        usage = sum((r.usage for r in results), Usage())
        return LLMResult(generations=generations,
                         llm_output={"token_usage": usage.model_dump(), "model_name": self.model_name})

    def _last_chunk(self, result: GenerationResult) -> GenerationChunk:
        return GenerationChunk(text="", generation_info=result_metadata(result, self.model_name))

    # -- the calls -------------------------------------------------------------------------------------------
    def _generate(self, prompts: list[str], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> LLMResult:
        return self._result(self._decoder().generate_batch(self._requests(prompts, stop, kwargs, run_manager)))

    async def _agenerate(self, prompts: list[str], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any) -> LLMResult:
        return self._result(await self._decoder().agenerate_batch(self._requests(prompts, stop, kwargs, run_manager)))

    def stream(self, input: Any, config: RunnableConfig | None = None, *, stop: list[str] | None = None,
               **kwargs: Any) -> Iterator[str]:
        return super().stream(input, config, stop=stop, **lift_user_text(config, kwargs))

    def astream(self, input: Any, config: RunnableConfig | None = None, *, stop: list[str] | None = None,
                **kwargs: Any) -> AsyncIterator[str]:
        return super().astream(input, config, stop=stop, **lift_user_text(config, kwargs))

    def _stream(self, prompt: str, stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[GenerationChunk]:
        return stream_chunks(lambda: self._decoder().stream(*self._requests([prompt], stop, kwargs)),
                             lambda delta: GenerationChunk(text=delta), self._last_chunk, run_manager)

    def _astream(self, prompt: str, stop: list[str] | None = None,
                 run_manager: AsyncCallbackManagerForLLMRun | None = None,
                 **kwargs: Any) -> AsyncIterator[GenerationChunk]:
        return astream_chunks(lambda: self._decoder().astream(*self._requests([prompt], stop, kwargs)),
                              lambda delta: GenerationChunk(text=delta), self._last_chunk, run_manager)
