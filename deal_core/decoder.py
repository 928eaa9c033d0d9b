"""The public decoder: `DeAL(model, rewards).generate(prompt)`, batched and streaming variants, and greedy."""

from __future__ import annotations

import copy
import time
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from typing import Any

from deal_core.aio import iterate_in_thread
from deal_core.answers import build_result, score_answers
from deal_core.backends.base import Backend, WholeSequence
from deal_core.config import DeALConfig, make_config
from deal_core.constraint import CALL_OPEN
from deal_core.errors import ConfigError, PromptError
from deal_core.loop import Event
from deal_core.messages import PromptLike
from deal_core.model import load_model
from deal_core.objective import finish_reason
from deal_core.preparing import Defaults, Prepared, prepare
from deal_core.request import Request
from deal_core.result import GenerationResult, SearchStats
from deal_core.rewards.base import RewardLike, as_reward_sum
from deal_core.rewards.tool_need import ToolNeed
from deal_core.runner import Runner
from deal_core.search import Finished
from deal_core.stops import cut_at_stop
from deal_core.streaming import AsyncTextStream, DeltaTracker, IncrementalDecoder, TextStream
from deal_core.tool_turns import retry_for_cut_call

__all__ = ["DeAL", "Prepared", "TextStream"]


def _prompt_list(prompts: Sequence[PromptLike]) -> list[PromptLike]:
    """The prompts of a batch call as a list; a bare string would otherwise run as one prompt per character."""
    if isinstance(prompts, (str, bytes, Mapping)) or not isinstance(prompts, Iterable):
        raise PromptError(
            f"a batch call takes a list of prompts, got {type(prompts).__name__}: pass [prompt], or call generate()"
        )
    return list(prompts)


DEFAULT_TOOL_NEED = ToolNeed()  # decides tool_choice="auto" (deal_core/rewards/tool_need.py)


class DeAL:
    """Decoding-time alignment over a causal LM.

    >>> deal = DeAL(rewards=Keywords(keywords=["dog", "frisbee", "park"]))
    >>> deal.generate("Write a sentence using the words: dog, frisbee, park.").text
    """

    def __init__(
        self,
        model: Backend | str | None = None,
        rewards: RewardLike = None,
        config: DeALConfig | None = None,
        use_chat_template: bool | None = None,
        batching: bool = False,
        isolate_calls: bool = False,
        tool_need: ToolNeed | None = DEFAULT_TOOL_NEED,
        engine: str | None = None,
        **settings: Any,
    ):
        # engine: "auto" | "llamacpp" | "transformers" for a model given by name (see deal_core.backends.loader)
        self.lm: Backend = model if isinstance(model, Backend) else load_model(model, engine=engine)
        self.rewards = as_reward_sum(rewards)
        self.config = make_config(config, **settings)
        self.use_chat_template = use_chat_template
        # batching: one-prompt calls made at the same time (threads, tasks, a server's requests) share one search's
        # forward passes (deal_core/scheduler.py) instead of taking turns on the model; isolate_calls: on an engine
        # whose rows depend on their batch (llama.cpp) they take turns instead, each answer bit-identical to the call
        # made alone (deal_core/runner.py)
        self.runner = Runner(self.lm, batching, isolate_calls)
        # tool_choice="auto" decided by the request's need for a bound tool (None: left to the model)
        self.tool_need = tool_need

    def variant(self, *, batching: bool | None = None, isolate_calls: bool | None = None, rewards: RewardLike = ...,
                use_chat_template: Any = ...) -> DeAL:
        """A decoder over the same backend and the same run loop (one admission, one fair share for both) with
        other defaults: what a server serving chat and plain completions from one model uses."""
        other = copy.copy(self)
        batching = self.batching if batching is None else batching
        isolate_calls = self.runner.isolate_calls if isolate_calls is None else isolate_calls
        if (batching, isolate_calls) != (self.batching, self.runner.isolate_calls):
            other.runner = Runner(self.lm, batching, isolate_calls)
        if rewards is not ...:
            other.rewards = as_reward_sum(rewards)
        if use_chat_template is not ...:
            other.use_chat_template = use_chat_template
        return other

    # -- preparing a call ------------------------------------------------------------------------------------
    def _prepare(self, prompts: Sequence[PromptLike | Request], rewards: RewardLike, overrides: dict[str, Any],
                 max_prompt_tokens: int | None = None) -> Prepared:
        defaults = Defaults(self.config, self.rewards, self.use_chat_template, self.tool_need)
        return prepare(self.lm, prompts, rewards, overrides, defaults, max_prompt_tokens)

    # -- public API ------------------------------------------------------------------------------------------
    def prepare(self, prompt: PromptLike | Request, rewards: RewardLike = None, *,
                max_prompt_tokens: int | None = None, **overrides: Any) -> Prepared:
        """Validate and tokenize one call ahead of running it: `generate`, `agenerate`, `stream` and `astream`
        take the result in place of a prompt. A server prepares in a worker thread (tokenizing waits for the
        model's lock) and checks the prompt's size and settings against its limits before any search starts."""
        return self._prepare([prompt], rewards, overrides, max_prompt_tokens)

    def _one(self, prompt: PromptLike | Request | Prepared, rewards: RewardLike, overrides: dict[str, Any]) -> Prepared:
        if not isinstance(prompt, Prepared):
            return self._prepare([prompt], rewards, overrides)
        if rewards is not None or overrides:
            raise ConfigError("a prepared call takes no rewards or settings of its own: pass them to prepare()")
        return prompt

    @property
    def batching(self) -> bool:
        return self.runner.batching

    def _steps(self, prepared: Prepared) -> Iterator[list[GenerationResult] | None]:
        """None after every search step, then the results: lets callers stop or time-slice a search."""
        results = yield from self._run(prepared)
        for slot, again in self._retries(prepared, results).items():  # post-stage: a budget-cut call, once more
            [results[slot]] = yield from self._run(again)
        yield results

    def _run(self, prepared: Prepared) -> Generator[None, None, list[GenerationResult]]:
        done: list[Event] = []
        for events in self.runner.run(prepared):
            done += [e for e in events if e.finished is not None]
            yield None
        return self.runner.results(prepared, done)

    def _retries(self, prepared: Prepared, results: list[GenerationResult]) -> dict[int, Prepared]:
        """A turn whose only output is a tool call the budget cut runs again, once, with twice the budget
        (`tool_turns.retry_for_cut_call`), whichever frontend made the call."""
        retries = {}
        for slot, result in enumerate(results):
            again = retry_for_cut_call(prepared.requests[slot], result, prepared.config)
            if again is not None:
                retries[slot] = self._prepare([again], None, {})
        return retries

    def generate_batch(
        self, prompts: Sequence[PromptLike | Request], rewards: RewardLike = None, **overrides: Any
    ) -> list[GenerationResult]:
        """Align a batch of prompts in one search (one shared forward per step)."""
        *_, results = self._steps(self._prepare(_prompt_list(prompts), rewards, overrides))
        return results

    async def agenerate_batch(
        self, prompts: Sequence[PromptLike | Request], rewards: RewardLike = None, **overrides: Any
    ) -> list[GenerationResult]:
        """`generate_batch` in a worker thread; cancelling the awaiting task stops the search at its next step."""
        prepared = self._prepare(_prompt_list(prompts), rewards, overrides)  # bad input raises here, in the caller
        results: list[GenerationResult] = []
        async for item in iterate_in_thread(lambda: self._steps(prepared)):
            results = item if item is not None else results
        return results

    async def agenerate(self, prompt: PromptLike | Prepared, rewards: RewardLike = None,
                        **overrides: Any) -> GenerationResult:
        """`generate` in a worker thread; cancelling the awaiting task stops the search at its next step."""
        prepared = self._one(prompt, rewards, overrides)
        results: list[GenerationResult] = []
        async for item in iterate_in_thread(lambda: self._steps(prepared)):
            results = item if item is not None else results
        return results[0]

    async def astream(self, prompt: PromptLike | Prepared, rewards: RewardLike = None,
                      **overrides: Any) -> AsyncTextStream:
        """Async text deltas; `.result` is set once the stream is exhausted."""
        stream = self.stream(prompt, rewards, **overrides)
        return AsyncTextStream(stream)

    def generate(self, prompt: PromptLike | Prepared, rewards: RewardLike = None, **overrides: Any) -> GenerationResult:
        """Align one prompt (a string or a list of chat messages). Keyword overrides change `DeALConfig` fields."""
        *_, results = self._steps(self._one(prompt, rewards, overrides))
        return results[0]

    def stream(self, prompt: PromptLike | Prepared, rewards: RewardLike = None, **overrides: Any) -> TextStream:
        """Stream committed text as it is decided. With beam_width > 1, or when a reward proposes answers for the
        request (`Safety` on a flagged one), the text arrives once, at the end."""
        prepared = self._one(prompt, rewards, overrides)
        config = prepared.config
        stream = TextStream(iter(()))
        calls = prepared.formats[0] is not None and prepared.requests[0].tools

        def deltas() -> Iterator[str]:
            # with tools, text is shown up to the first tool call; the calls arrive with the result
            tracker = DeltaTracker([*config.stop, CALL_OPEN] if calls else config.stop)
            text = IncrementalDecoder(self.lm.decode)
            done: list[Event] = []
            for events in self.runner.run(prepared):
                for event in events:
                    if event.finished is not None:
                        done.append(event)
                    elif config.beam_width == 1 and not prepared.proposed(0) and event.tokens is not None:
                        delta = tracker.update(text.update(event.tokens))
                        if delta:
                            yield delta
            [result] = self.runner.results(prepared, done)
            for again in self._retries(prepared, [result]).values():  # nothing was shown: a cut call shows no text
                *_, [result] = self._steps(again)
            tail = tracker.update(result.text, final=True)
            stream.result = result
            if tail:
                yield tail

        stream._deltas = deltas()
        return stream

    def greedy(self, prompt: PromptLike | Request, **overrides: Any) -> GenerationResult:
        """Plain greedy decoding with the engine's own loop (transformers' `generate`): what DeAL is compared to.
        The result carries the request's rewards (or the decoder's) as scores; they do not steer it."""
        prepared = self._prepare([prompt], None, overrides)
        config, reward_sum, encoded = prepared
        if prepared.formats[0] is not None:
            raise ConfigError("greedy() decodes without output constraints: drop tools/response_format, or call "
                              "generate() with top_k=1 and reward_weight=0 for constrained greedy decoding")
        if not isinstance(self.lm, WholeSequence):
            raise ConfigError(f"{type(self.lm).__name__} has no decoding loop of its own (the WholeSequence verbs): "
                              "call generate() with top_k=1 and reward_weight=0 for greedy decoding")
        ids, start = encoded[0].ids, time.perf_counter()
        with self.runner.session() as lm:
            out = lm.generate(ids, max_new_tokens=config.max_new_tokens, stop=config.stop,
                              repetition_penalty=config.repetition_penalty,
                              no_repeat_ngram_size=config.no_repeat_ngram_size)[0]
            hit = cut_at_stop(lm.decode(out.tokens), config.stop)[1]
            done = Finished(out.tokens, out.logp, out.logp, finish_reason(out.ended, hit), False)
            emitted = len(out.tokens) + out.ended
            stats = SearchStats(steps=emitted, forward_passes=emitted, tokens_evaluated=len(ids) + emitted - 1,
                                wall_time_s=time.perf_counter() - start)
            result = build_result(lm, done, prepared, 0, stats)
            score_answers(reward_sum, [encoded[0].request], [result])
        return result
