"""Request → prepared call: one validated config and reward sum, each prompt tokenized once (cut to the window
where asked) and its output format compiled. Everything a caller can get wrong is raised here, before any search."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from deal_core.backends.base import Backend
from deal_core.config import DeALConfig
from deal_core.constraint import Matcher, check_grammar, grammar_for
from deal_core.errors import ConfigError, ContextLengthError, PromptError
from deal_core.messages import PromptLike
from deal_core.prompts import EncodedPrompt, encode_prompt
from deal_core.request import Request
from deal_core.rewards.base import RewardLike, RewardSum
from deal_core.rewards.tool_need import ToolNeed
from deal_core.tool_turns import decide_auto, minimum_budget, with_result_use


@dataclass
class Prepared:
    """A validated call: one config and reward sum, each request with its encoded prompt and output format (a
    compiled grammar at its start, or None for free text; each search forks it)."""

    config: DeALConfig
    rewards: RewardSum
    encoded: list[EncodedPrompt]
    requests: list[Request]
    formats: list[Matcher | None]
    # per request: answer openings its rewards propose (deal_core/proposals.py); none with an output format
    proposals: list[list[str]] = field(default_factory=list)

    def proposed(self, slot: int) -> list[str]:
        return self.proposals[slot] if slot < len(self.proposals) else []

    def __iter__(self) -> Iterator[Any]:
        return iter((self.config, self.rewards, self.encoded))


@dataclass
class Defaults:
    """What a decoder adds to each request: its settings, rewards, chat-template choice and tool-need decision."""

    config: DeALConfig
    rewards: RewardSum
    use_chat_template: bool | None
    tool_need: ToolNeed | None


def prepare(lm: Backend, prompts: Sequence[PromptLike | Request], rewards: RewardLike, overrides: dict[str, Any],
            defaults: Defaults, max_prompt_tokens: int | None = None) -> Prepared:
    """Requests → one validated config, the reward sum and the encoded prompts (each prompt tokenized once).
    `max_prompt_tokens` caps a prompt below the context window (a server's limit)."""
    if not prompts:
        raise PromptError("no prompts given: pass at least one prompt")
    requests = [decide_auto(Request.of(p, rewards, **overrides), defaults.tool_need) for p in prompts]
    first, config = requests[0], requests[0].config(defaults.config)
    if any(r.rewards != first.rewards or r.config(defaults.config) != config for r in requests[1:]):
        raise ConfigError("the requests of one batch must share their settings and rewards: run them apart")
    with lm.lock:  # a turn that must call gets room for its arguments (tool_turns.minimum_budget)
        need = max((minimum_budget(lm.grammar_tokenizer(), r) for r in requests if r.tools), default=0)
    if need > config.max_new_tokens:
        config = config.model_copy(update={"max_new_tokens": need})
    with lm.lock:  # a fast tokenizer must not be used from two threads at once ("Already borrowed")
        encoded = [encode_prompt(lm, r, config.alignment_prompt, defaults.use_chat_template) for r in requests]
    encoded = [_fitted(lm, e, config, max_prompt_tokens) for e in encoded]
    formats = [output_format(lm, r, config) for r in requests]
    if config.no_repeat_ngram_size and any(f is not None for f in formats):
        raise ConfigError(f"no_repeat_ngram_size={config.no_repeat_ngram_size} cannot be combined with tools or a "
                          "response_format: JSON repeats short token runs by design, so the rule could forbid "
                          "every token the format allows; pass no_repeat_ngram_size=0 for this request")
    reward_sum = defaults.rewards if first.rewards is None else first.rewards
    reward_sum = with_result_use(reward_sum, requests, config.tool_result_weight)  # tool_turns: answers from results
    for term in reward_sum.terms:  # rewards that ask a model (Judge) ask the search's own backend
        term.reward.use_backend(lm)
    proposals = [reward_sum.proposals(e.request) if f is None or _answers_in_text(r) else []
                 for e, f, r in zip(encoded, formats, requests)]
    return Prepared(config, reward_sum, encoded, requests, formats, proposals)


def _fitted(lm: Backend, enc: EncodedPrompt, config: DeALConfig, max_prompt_tokens: int | None) -> EncodedPrompt:
    """The prompt if it leaves room for the answer; its end if `truncate_prompt`; else a ContextLengthError."""
    window = lm.context_window
    room = window - config.max_new_tokens if max_prompt_tokens is None else \
        min(window - config.max_new_tokens, max_prompt_tokens)
    if len(enc.ids) <= room:
        return enc
    if config.truncate_prompt and room > 0:
        return EncodedPrompt(ids=enc.ids[-room:], request=enc.request)
    if len(enc.ids) + config.max_new_tokens > window:
        raise ContextLengthError(len(enc.ids), config.max_new_tokens, window)
    raise ContextLengthError(len(enc.ids), config.max_new_tokens, window, max_prompt_tokens)


def _answers_in_text(request: Request) -> bool:
    """A turn with tools bound whose choice is "none": its format is text that opens no call, so a proposed answer
    in words fits it (the proposal is then weighed alone, without a free continuation: `proposals.complete`)."""
    return bool(request.tools) and request.choice[0] == "none" and request.response_format is None


def output_format(lm: Backend, request: Request, config: DeALConfig) -> Matcher | None:
    """The request's output format compiled, checked: a valid grammar whose shortest complete form fits."""
    grammar = grammar_for(request)
    if grammar is None:
        return None
    mode, name = request.choice
    what = (f"tool {name!r}" if name else "the tools' schemas") if request.tools and mode != "none" \
        else "response_format"
    check_grammar(grammar, what)
    with lm.lock:
        start = Matcher.build(lm.grammar_tokenizer(), grammar)
    shortest = start.closing_path(4096)
    if shortest is not None and len(shortest) > config.max_new_tokens:
        raise ConfigError(f"max_new_tokens={config.max_new_tokens} cannot hold the required output format (its "
                          f"shortest complete form takes {len(shortest)} tokens): raise max_new_tokens")
    return start
