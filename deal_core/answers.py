"""The one place a `GenerationResult` is built: a finished answer (from a search, a proposal or greedy decoding)
becomes text, tool calls or parsed JSON, a finish reason and a snapshot of the call's counters; then its final
rewards are scored once, as a whole."""

from __future__ import annotations

import json
import uuid

from deal_core.backends.base import Backend
from deal_core.constraint import ConstraintError, open_strings
from deal_core.objective import mean_logprob
from deal_core.preparing import Prepared
from deal_core.request import ToolCall
from deal_core.result import GenerationResult, SearchStats, StepTrace
from deal_core.rewards.base import RewardSum
from deal_core.search import Finished
from deal_core.stops import cut_at_stop
from deal_core.tool_turns import normalised, read_calls


def _tool_turn(raw: str, done: Finished, schemas: dict[str, dict]) -> tuple[str, list[ToolCall], list[dict], str]:
    """Text before the calls, the runnable calls (arguments as their schema asks: `tool_turns.normalised`), the
    calls the budget cut, and the finish reason they imply."""
    text, found, cut = read_calls(raw, done.complete, done.closed_early)  # a call the budget cut is no call
    found = [(n, normalised(a, schemas.get(n, {}))) for n, a in found]
    if not done.complete and not found and not cut:
        text, cut = "", [{"name": None, "args": raw, "error": "max_new_tokens ran out before the call began"}]
    calls = [ToolCall(id=f"call_{uuid.uuid4().hex[:24]}", name=n, arguments=a) for n, a in found]
    reason = "tool_calls" if calls and not cut and done.complete else done.reason
    return text, calls, cut, reason


def build_result(lm: Backend, done: Finished, prepared: Prepared, slot: int, stats: SearchStats,
                 trace: list[StepTrace] | None = None) -> GenerationResult:
    """The result of answer `done` to request `slot` of `prepared` (rewards still empty). `stats` is copied: a
    result's counters never change after it is built, and no two results share them."""
    config = prepared.config
    raw, _ = cut_at_stop(lm.decode(done.tokens), config.stop)
    request, grammar = prepared.requests[slot], prepared.formats[slot]
    text, calls, cut, parsed, reason = raw, [], [], None, done.reason
    tools = grammar is not None and bool(request.tools) and request.choice[0] != "none"
    if tools:
        text, calls, cut, reason = _tool_turn(raw, done, {t.name: t.parameters for t in request.tools})
    if done.closed_early or cut:  # the budget, not the model, ended the answer
        reason = "length"
    fmt = request.response_format
    json_answer = fmt is not None and fmt.type != "text"
    if not done.complete and not tools and not json_answer:  # plain text under a format (tools bound, no call)
        reason = "length"
    elif not done.complete and not tools:
        rules = open_strings(fmt.json_schema if fmt is not None else None)
        why = f" (the budget cannot close strings with {', '.join(rules)}: only the model can)" if rules else ""
        raise ConstraintError(f"the answer reached max_new_tokens={config.max_new_tokens} before its JSON answer "
                              f"was complete ({raw[-80:]!r}){why}: raise max_new_tokens")
    if grammar is not None and not tools and json_answer:
        parsed = json.loads(raw)
    result = GenerationResult(
        text=text, token_ids=done.tokens, logprob=done.logp, rewards={}, reward_total=0.0, finish_reason=reason,
        prompt_tokens=len(prepared.encoded[slot].ids), tool_calls=calls, invalid_tool_calls=cut, parsed=parsed,
        raw_text=raw if raw != text else None, constraint_fallback=done.fallback, stats=stats.model_copy(deep=True),
        trace=trace if config.trace else None,
    )
    result._ended = done.reason == "eos"
    return result


def score_answers(rewards: RewardSum, requests: list, results: list[GenerationResult]) -> None:
    """Each answer's final rewards, scored once as a whole (with its mean token log-probability, an EOS that ended
    it included, for rewards that read it)."""
    if not rewards:
        return
    logprobs = [mean_logprob(r.logprob, len(r.token_ids), r._ended) for r in results]
    scores = rewards.evaluate(requests, [r.raw_text or r.text for r in results], True, logprobs)
    for i, result in enumerate(results):
        result.rewards, result.reward_total = scores.row(i), scores.total[i]
