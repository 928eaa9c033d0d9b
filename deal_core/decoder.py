"""The public decoder: `DeAL(model, rewards).generate(prompt)`, batched and streaming variants, and greedy."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from deal_core.aio import iterate_in_thread
from deal_core.backends.base import Backend
from deal_core.config import DeALConfig, make_config
from deal_core.constraint import CALL_OPEN, ConstraintError, Matcher, check_grammar, grammar_for, open_strings
from deal_core.errors import ConfigError, ContextLengthError, PromptError
from deal_core.messages import PromptLike
from deal_core.model import load_model
from deal_core.prompts import EncodedPrompt, encode_prompt
from deal_core.request import Request, ToolCall
from deal_core.result import GenerationResult, SearchStats
from deal_core.rewards.base import RewardLike, RewardSum, as_reward_sum
from deal_core.rewards.tool_need import ToolNeed
from deal_core.search import DeALSearch, Finished, StepUpdate
from deal_core.streaming import AsyncTextStream, DeltaTracker, IncrementalDecoder, TextStream, cut_at_stop
from deal_core.tool_turns import decide_auto, minimum_budget, read_calls


@dataclass
class Prepared:
    """A validated call: one config and reward sum, each request with its encoded prompt and output format (a
    compiled grammar at its start, or None for free text; each search forks it)."""

    config: DeALConfig
    rewards: RewardSum
    encoded: list[EncodedPrompt]
    requests: list[Request]
    formats: list[Matcher | None]

    def __iter__(self) -> Iterator[Any]:
        return iter((self.config, self.rewards, self.encoded))


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
        # forward passes (deal_core/scheduler.py) instead of taking turns on the model
        self.batching = batching
        self._batcher: Any = None
        # tool_choice="auto" decided by the request's need for a bound tool (None: left to the model)
        self.tool_need = tool_need

    # -- preparing a call ------------------------------------------------------------------------------------
    def _prepare(
        self, prompts: Sequence[PromptLike | Request], rewards: RewardLike, overrides: dict[str, Any],
        max_prompt_tokens: int | None = None,
    ) -> Prepared:
        """Requests → one validated config, the reward sum and the encoded prompts (each prompt tokenized once).
        `max_prompt_tokens` caps a prompt below the context window (a server's limit)."""
        if not prompts:
            raise PromptError("no prompts given: pass at least one prompt")
        requests = [decide_auto(Request.of(p, rewards, **overrides), self.tool_need) for p in prompts]
        first, config = requests[0], requests[0].config(self.config)
        if any(r.rewards != first.rewards or r.config(self.config) != config for r in requests[1:]):
            raise ConfigError("the requests of one batch must share their settings and rewards: run them apart")
        with self.lm.lock:  # a turn that must call gets room for its arguments (tool_turns.minimum_budget)
            need = max((minimum_budget(self.lm.grammar_tokenizer(), r) for r in requests if r.tools), default=0)
        if need > config.max_new_tokens:
            config = config.model_copy(update={"max_new_tokens": need})
        reward_sum = self.rewards if first.rewards is None else first.rewards
        with self.lm.lock:  # a fast tokenizer must not be used from two threads at once ("Already borrowed")
            encoded = [encode_prompt(self.lm, r, config.alignment_prompt, self.use_chat_template) for r in requests]
        window = self.lm.context_window
        room = window - config.max_new_tokens if max_prompt_tokens is None else \
            min(window - config.max_new_tokens, max_prompt_tokens)
        for i, enc in enumerate(encoded):
            if len(enc.ids) > room:
                if config.truncate_prompt and room > 0:
                    encoded[i] = EncodedPrompt(ids=enc.ids[-room:], request=enc.request)
                elif len(enc.ids) + config.max_new_tokens > window:
                    raise ContextLengthError(len(enc.ids), config.max_new_tokens, window)
                else:
                    raise ContextLengthError(len(enc.ids), config.max_new_tokens, window, max_prompt_tokens)
        formats = [self._format(r, config) for r in requests]
        if config.no_repeat_ngram_size and any(f is not None for f in formats):
            raise ConfigError(f"no_repeat_ngram_size={config.no_repeat_ngram_size} cannot be combined with tools or a "
                              "response_format: JSON repeats short token runs by design, so the rule could forbid "
                              "every token the format allows; pass no_repeat_ngram_size=0 for this request")
        return Prepared(config, reward_sum, encoded, requests, formats)

    def _format(self, request: Request, config: DeALConfig) -> Matcher | None:
        """The request's output format compiled, checked: a valid grammar whose shortest complete form fits."""
        grammar = grammar_for(request)
        if grammar is None:
            return None
        mode, name = request.choice
        what = (f"tool {name!r}" if name else "the tools' schemas") if request.tools and mode != "none" \
            else "response_format"
        check_grammar(grammar, what)
        with self.lm.lock:
            start = Matcher.build(self.lm.grammar_tokenizer(), grammar)
        shortest = start.closing_path(4096)
        if shortest is not None and len(shortest) > config.max_new_tokens:
            raise ConfigError(f"max_new_tokens={config.max_new_tokens} cannot hold the required output format (its "
                              f"shortest complete form takes {len(shortest)} tokens): raise max_new_tokens")
        return start

    @staticmethod
    def _constraints(prepared: Prepared) -> list[Matcher | None]:
        """Each search's own copy of the output formats (a matcher holds its position)."""
        return [None if f is None else f.fork() for f in prepared.formats]

    def _result(
        self, search: DeALSearch, index: int, done: Finished, prepared: Prepared, slot: int | None = None
    ) -> GenerationResult:
        """The result of prompt `index` of `search`, which is request `slot` (default: `index`) of `prepared`."""
        config = prepared.config
        raw, _ = cut_at_stop(self.lm.decode(done.tokens), config.stop)
        slot = index if slot is None else slot
        request, grammar = prepared.requests[slot], prepared.formats[slot]
        text, calls, cut, parsed, reason = raw, [], [], None, done.reason
        tools = grammar is not None and bool(request.tools) and request.choice[0] != "none"
        if tools:  # a call the budget cut is no call (tool_turns.read_calls); the complete ones before it stand
            text, found, cut = read_calls(raw, done.complete, done.closed_early)
            if not done.complete and not found and not cut:
                text, cut = "", [{"name": None, "args": raw, "error": "max_new_tokens ran out before the call began"}]
            calls = [ToolCall(id=f"call_{uuid.uuid4().hex[:24]}", name=n, arguments=a) for n, a in found]
            reason = "tool_calls" if calls and not cut and done.complete else reason
        if done.closed_early or cut:  # the budget, not the model, ended the answer
            reason = "length"
        fmt = request.response_format
        if not done.complete and not tools:
            rules = open_strings(fmt.json_schema if fmt is not None else None)
            why = f" (the budget cannot close strings with {', '.join(rules)}: only the model can)" if rules else ""
            raise ConstraintError(f"the answer reached max_new_tokens={config.max_new_tokens} before its JSON answer "
                                  f"was complete ({raw[-80:]!r}){why}: raise max_new_tokens")
        if grammar is not None and not tools and fmt is not None and fmt.type != "text":
            parsed = json.loads(raw)
        result = GenerationResult(
            text=text,
            token_ids=done.tokens,
            logprob=done.logp,
            rewards={},
            reward_total=0.0,
            finish_reason=reason,
            prompt_tokens=len(search.prompts[index].ids),
            tool_calls=calls,
            invalid_tool_calls=cut,
            parsed=parsed,
            raw_text=raw if raw != text else None,
            constraint_fallback=done.fallback,
            stats=search.stats,
            trace=search.traces[index] if config.trace else None,
        )
        result._ended = done.reason == "eos"
        return result

    def _final_rewards(self, results: list[GenerationResult], requests: list[str], reward_sum: RewardSum) -> None:
        if not reward_sum:
            return
        # each answer's mean token log-probability (an EOS that ended it included), for rewards that read it
        logprobs = [r.logprob / max(len(r.token_ids) + r._ended, 1) for r in results]
        scores = reward_sum.evaluate(requests, [r.raw_text or r.text for r in results], True, logprobs)
        for i, result in enumerate(results):
            result.rewards = scores.row(i)
            result.reward_total = scores.total[i]

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

    def _batch_steps(self, prepared: Prepared) -> Iterator[list[GenerationResult] | None]:
        """Yields None after every search step, then the results: lets callers stop or time-slice a search."""
        config, reward_sum, encoded = prepared
        search = DeALSearch(self.lm, config, reward_sum, encoded, self._constraints(prepared))
        done: dict[int, Finished] = {}
        for update in search.run():
            done.update(update.finished)
            yield None
        results = [self._result(search, i, done[i], prepared) for i in range(len(encoded))]
        self._final_rewards(results, [e.request for e in encoded], reward_sum)
        yield results

    def generate_batch(
        self, prompts: Sequence[PromptLike | Request], rewards: RewardLike = None, **overrides: Any
    ) -> list[GenerationResult]:
        """Align a batch of prompts in one search (left-padded, one shared forward per step)."""
        *_, results = self._batch_steps(self._prepare(_prompt_list(prompts), rewards, overrides))
        return results

    async def agenerate_batch(
        self, prompts: Sequence[PromptLike | Request], rewards: RewardLike = None, **overrides: Any
    ) -> list[GenerationResult]:
        """`generate_batch` in a worker thread; cancelling the awaiting task stops the search at its next step."""
        prepared = self._prepare(_prompt_list(prompts), rewards, overrides)  # bad input raises here, in the caller
        results: list[GenerationResult] = []
        async for item in iterate_in_thread(lambda: self._batch_steps(prepared)):
            if item is not None:
                results = item
        return results

    async def agenerate(self, prompt: PromptLike | Prepared, rewards: RewardLike = None,
                        **overrides: Any) -> GenerationResult:
        """`generate` in a worker thread; cancelling the awaiting task stops the search at its next step."""
        prepared = self._one(prompt, rewards, overrides)
        steps = self._single_steps if self.batching else self._batch_steps
        result = None
        async for item in iterate_in_thread(lambda: steps(prepared)):
            result = item if item is not None else result
        return result if self.batching else result[0]

    # -- one prompt, alone or sharing a search with concurrent calls ------------------------------------------
    def _follow(self, prepared: Prepared) -> Iterator[tuple[DeALSearch, int, StepUpdate]]:
        """The steps of the search serving a one-prompt call: (search, the prompt's index in it, update)."""
        if self.batching:
            if self._batcher is None:
                from deal_core.scheduler import Scheduler

                self._batcher = Scheduler(self)
            yield from self._batcher.submit(prepared)
            return
        search = DeALSearch(self.lm, prepared.config, prepared.rewards, prepared.encoded, self._constraints(prepared))
        for update in search.run():
            yield search, 0, update

    def _single_steps(self, prepared: Prepared) -> Iterator[GenerationResult | None]:
        """None after every step, then the result."""
        for search, index, update in self._follow(prepared):
            if index in update.finished:
                result = self._result(search, index, update.finished[index], prepared, 0)
                self._final_rewards([result], [prepared.encoded[0].request], prepared.rewards)
                yield result
                return
            yield None

    async def astream(self, prompt: PromptLike | Prepared, rewards: RewardLike = None, **overrides: Any) -> AsyncTextStream:
        """Async text deltas; `.result` is set once the stream is exhausted."""
        stream = self.stream(prompt, rewards, **overrides)
        return AsyncTextStream(stream)

    def generate(self, prompt: PromptLike | Prepared, rewards: RewardLike = None, **overrides: Any) -> GenerationResult:
        """Align one prompt (a string or a list of chat messages). Keyword overrides change `DeALConfig` fields."""
        prepared = self._one(prompt, rewards, overrides)
        if not self.batching:
            *_, results = self._batch_steps(prepared)
            return results[0]
        *_, result = self._single_steps(prepared)
        return result

    def stream(self, prompt: PromptLike | Prepared, rewards: RewardLike = None, **overrides: Any) -> TextStream:
        """Stream committed text as it is decided. With beam_width > 1 the text arrives once, at the end."""
        prepared = self._one(prompt, rewards, overrides)
        config, reward_sum, encoded = prepared
        stream = TextStream(iter(()))
        calls = prepared.formats[0] is not None and prepared.requests[0].tools

        def deltas() -> Iterator[str]:
            # with tools, text is shown up to the first tool call; the calls arrive with the result
            tracker = DeltaTracker([*config.stop, CALL_OPEN] if calls else config.stop)
            text = IncrementalDecoder(self.lm.decode)
            finished = search = index = None
            for search, index, update in self._follow(prepared):
                if index in update.finished:
                    finished = update.finished[index]
                elif config.beam_width == 1 and index in update.tokens:
                    delta = tracker.update(text.update(update.tokens[index]))
                    if delta:
                        yield delta
            result = self._result(search, index, finished, prepared, 0)
            self._final_rewards([result], [encoded[0].request], reward_sum)
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
        lm, ids = self.lm, encoded[0].ids
        start = time.perf_counter()
        out = lm.generate(ids, max_new_tokens=config.max_new_tokens, stop=config.stop,
                          repetition_penalty=config.repetition_penalty,
                          no_repeat_ngram_size=config.no_repeat_ngram_size)[0]
        tokens, logp = out.tokens, out.logp
        emitted = len(tokens) + out.ended
        text, hit = cut_at_stop(lm.decode(tokens), config.stop)
        reason = "eos" if out.ended else "stop" if hit else "length"
        stats = SearchStats(steps=emitted, forward_passes=emitted, tokens_evaluated=len(ids) + emitted - 1,
                            wall_time_s=time.perf_counter() - start)
        result = GenerationResult(text=text, token_ids=tokens, logprob=logp, rewards={}, reward_total=0.0,
                                  finish_reason=reason, prompt_tokens=len(ids), stats=stats)
        result._ended = out.ended
        self._final_rewards([result], [encoded[0].request], reward_sum)
        return result
