"""Answers that rewards propose, weighed against the search's answer by the search's own objective.

A reward may offer openings for a request (`Reward.proposals`; `Safety` offers short refusals for a request its
prompt head flags, and nothing otherwise). Each opening stands for two whole candidate answers: the opening alone,
ended, and the opening followed by the model's greedy continuation until it ends or the budget runs out (the way the
search rolls out a candidate). Their log-probabilities are the model's own for those tokens (teacher-forced). The
search's finished answer and the proposed ones are compared by

    log P(answer) + λ · Σ wᵢ Rᵢ(request, answer)        (every answer final, rewards as `score_answers` asks them)

and the best is returned; a tie keeps the search's answer. A request without proposals (benign, or with tools or a
response format) is not touched: same tokens, no extra model call.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from deal_core.backends.base import Backend, WholeSequence
from deal_core.errors import ConfigError
from deal_core.objective import finish_reason, mean_logprob, objective
from deal_core.preparing import Prepared
from deal_core.search import Finished
from deal_core.stops import cut_at_stop


@dataclass(frozen=True)
class Weighed:
    """One whole answer and its objective: log P + λ · reward total."""

    finished: Finished
    text: str
    reward_total: float
    objective: float


def complete(lm: Backend, prompt_ids: list[int], opening: str, prepared: Prepared,
             free: bool = True) -> list[Finished]:
    """The whole answers an opening stands for: the opening alone, ended (its end-of-sequence token's log-probability
    counted), and the opening with the model's greedy continuation until it ends or the budget runs out. Every
    token's log-probability is the model's; nothing when the opening overruns the budget. `free` False: the
    opening alone (the turn has an output format that a free continuation would not keep)."""
    config = prepared.config
    with lm.lock:
        ids = lm.encode_text(opening, special_tokens=False)
    room = config.max_new_tokens - len(ids)  # an ended answer holds at most max_new_tokens - 1 tokens, as in a search
    if not ids or room < 1:
        return []
    eos = min(lm.eos_token_ids)
    *head, end = lm.continuation_logprobs(prompt_ids, ids + [eos])
    logp = sum(head)
    answers = [Finished(list(ids), logp + end, logp + end, "eos", False)]
    [rest] = lm.generate(prompt_ids + ids, max_new_tokens=room, stop=config.stop,
                         repetition_penalty=config.repetition_penalty, no_repeat_ngram_size=config.no_repeat_ngram_size)
    if rest.tokens:  # else the greedy continuation is the opening alone, ended
        tokens = ids + rest.tokens
        hit = cut_at_stop(lm.decode(tokens), config.stop)[1]
        answers.append(Finished(tokens, logp + rest.logp, logp + rest.logp, finish_reason(rest.ended, hit), False))
    return answers


def weigh(lm: Backend, prepared: Prepared, slot: int, answers: list[Finished]) -> list[Weighed]:
    """Each answer's objective for request `slot` (rewards asked once, on the whole answers, in one batch)."""
    config = prepared.config
    texts = [cut_at_stop(lm.decode(a.tokens), config.stop)[0] for a in answers]
    means = [mean_logprob(a.logp, len(a.tokens), a.reason == "eos") for a in answers]
    totals = prepared.rewards.evaluate([prepared.encoded[slot].request] * len(answers), texts, True, means).total
    return [Weighed(a, t, r, objective(a.logp, r, config.reward_weight)) for a, t, r in zip(answers, texts, totals)]


def best_answer(lm: Backend, prepared: Prepared, slot: int, done: Finished) -> Finished:
    """The search's answer `done` for request `slot`, or a proposed answer that beats it by the objective (or that
    a reward requires instead of it: `Reward.requires_proposal`)."""
    openings, request = prepared.proposed(slot), prepared.encoded[slot].request
    answer = cut_at_stop(lm.decode(done.tokens), prepared.config.stop)[0] if openings else ""
    if openings:  # asked again with the search's answer: a reward may withdraw its openings (Safety's answer check)
        openings = prepared.rewards.proposals(request, answer, required_only=not isinstance(lm, WholeSequence))
    if not openings:  # an engine without WholeSequence verbs skips optional proposals (ToolResultUse's)
        return done
    if not isinstance(lm, WholeSequence):
        raise ConfigError(f"{type(lm).__name__} cannot complete a proposed answer (no WholeSequence verbs): use "
                          "rewards that propose nothing (e.g. Safety(refusals=())) with this engine")
    free = prepared.formats[slot] is None
    proposed = [f for opening in openings for f in complete(lm, prepared.encoded[slot].ids, opening, prepared, free)]
    weighed = weigh(lm, prepared, slot, [done, *proposed])
    if len(weighed) > 1 and prepared.rewards.requires_proposal(request, answer):
        weighed = weighed[1:]  # the search's answer lacks what the request asked for (ToolResultUse after results)
    best = max(weighed, key=lambda w: w.objective)  # the first of equals: the search's answer
    return done if best.finished is done else replace(best.finished, score=best.objective)
