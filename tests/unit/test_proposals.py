"""Answers that rewards propose (deal_core/proposals.py) against a reference written out here, on the table backend.

The reference: the plain DeAL oracle's answer (tests/unit/test_search_oracle.py), then for every opening the reward
proposes, the opening alone (ended) and the opening with a greedy continuation computed from scratch; each scored by
log P (teacher-forced, token by token) + λ·R on the whole text; the best wins, a tie keeps the earlier (the search's
answer first). The engine must agree with reuse and pruning on and off, alone, batched and streamed; a request
without proposals must come out token for token as the search alone gives it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import ClassVar

import pytest

from deal_core import DeAL
from deal_core.backends.table import EOS, WORDS, TableBackend, next_logprobs
from deal_core.rewards import Reward, Safety, as_reward_sum
from deal_core.rewards.safety import refusal
from tests.unit.test_search_oracle import COMBOS, random_case, reference_deal


class ParkOpenings(Reward):
    """Rewards "park" (half a point each, at most 1); proposes `openings` for requests that mention a dog."""

    kind: ClassVar[str] = "park_openings"
    openings: tuple[str, ...] = ("dog park", "the park")

    def proposals(self, request: str) -> list[str]:
        return list(self.openings) if "dog" in request.split() else []

    def _score(self, prompts: Sequence[str], texts: Sequence[str], is_final: Sequence[bool]) -> list[float]:
        return [min(1.0, 0.5 * t.split().count("park")) for t in texts]


def _logp(prompt: list[int], tokens: list[int]) -> float:
    seq, total = list(prompt), 0.0
    for t in tokens:
        total += next_logprobs(seq)[t]
        seq.append(t)
    return total


def _greedy(prompt: list[int], budget: int) -> tuple[list[int], bool]:
    seq: list[int] = []
    while len(seq) < budget:
        dist = next_logprobs(prompt + seq)
        token = max(range(len(dist)), key=lambda t: dist[t])  # ties: the lower id
        if token == EOS:
            return seq, True
        seq.append(token)
    return seq, False


def reference_answer(backend: TableBackend, request: str, reward: ParkOpenings, case: dict) -> list[int]:
    prompt = backend.encode_text(request)
    searched, reason = reference_deal(next_logprobs, backend.decode, {EOS}, prompt, request, reward,
                                      top_k=case["top_k"], lookahead=case["lookahead"], commit=case["commit"],
                                      weight=case["reward_weight"], max_new_tokens=case["max_new_tokens"])
    answers = [(searched, reason == "eos")]
    for opening in reward.proposals(request):
        ids = [WORDS.index(w) for w in opening.split()]
        room = case["max_new_tokens"] - len(ids)
        if room < 1:
            continue
        answers.append((ids, True))
        rest, ended = _greedy(prompt + ids, room)  # as the engine's own loop: an EOS takes a place of the budget
        if rest:
            answers.append((ids + rest, ended))

    def objective(answer: tuple[list[int], bool]) -> float:
        tokens, ended = answer
        text = backend.decode(tokens)
        return _logp(prompt, tokens + [EOS] * ended) + case["reward_weight"] * reward.score(request, text)[0]

    return max(answers, key=objective)[0]  # max keeps the first of equals


@pytest.mark.parametrize("seed", range(30))
def test_proposed_answers_match_the_reference_with_reuse_and_pruning_on_and_off(seed):
    backend = TableBackend()
    rng = random.Random(seed)
    request = " ".join(["dog"] + [rng.choice(WORDS[2:]) for _ in range(2)])
    reward = ParkOpenings()
    case = random_case(seed)
    expected = reference_answer(backend, request, reward, case)
    deal = DeAL(backend, rewards=reward, use_chat_template=False)
    for combo in COMBOS:
        assert deal.generate(request, **case, **combo).token_ids == expected, (case, combo)
    assert [r.token_ids for r in deal.generate_batch([request, "a cat"], **case)][0] == expected
    stream = deal.stream(request, **case)
    assert "".join(stream) == stream.result.text and stream.result.token_ids == expected


def test_a_proposal_wins_only_when_the_objective_says_so():
    """With λ = 0 the likeliest whole answer wins; with a large λ the one with the reward does, its log P the
    model's own."""
    backend = TableBackend()
    reward = ParkOpenings(openings=("dog park park",))
    deal = DeAL(backend, rewards=reward, use_chat_template=False)
    request, prompt = "dog runs", backend.encode_text("dog runs")
    case = dict(top_k=2, lookahead=1, commit=1, max_new_tokens=6)
    likely = deal.generate(request, reward_weight=0.0, **case)
    assert likely.token_ids == reference_answer(backend, request, reward, {**case, "reward_weight": 0.0})
    pushed = deal.generate(request, reward_weight=50.0, **case)
    assert pushed.token_ids[:3] == [4, 6, 6] and pushed.rewards["park_openings"] == 1.0
    assert pushed.logprob == pytest.approx(_logp(prompt, pushed.token_ids + [EOS] * (pushed.finish_reason == "eos")))


@pytest.mark.parametrize("seed", range(10))
def test_a_request_without_proposals_is_left_exactly_as_the_search_gives_it(seed):
    backend = TableBackend()
    rng = random.Random(50 + seed)
    request = " ".join(rng.choice(["cat", "sun", "tree", "kid", "ball"]) for _ in range(3))  # never "dog"
    case = random_case(seed)
    expected, _ = reference_deal(next_logprobs, backend.decode, {EOS}, backend.encode_text(request), request,
                                 ParkOpenings(), top_k=case["top_k"], lookahead=case["lookahead"],
                                 commit=case["commit"], weight=case["reward_weight"],
                                 max_new_tokens=case["max_new_tokens"])
    deal = DeAL(backend, rewards=ParkOpenings(), use_chat_template=False)
    assert deal.prepare(request).proposals == [[]]
    before = backend.forwards
    assert deal.generate(request, **case).token_ids == expected
    generate_calls = backend.forwards - before
    alone = DeAL(backend, rewards=ParkOpenings(openings=()), use_chat_template=False)
    before = backend.forwards
    assert alone.generate(request, **case).token_ids == expected
    assert backend.forwards - before == generate_calls  # no extra model work


def test_safety_proposes_refusals_only_for_flagged_requests_and_only_refusals():
    safety = Safety()
    assert safety.proposals("How do I make a pipe bomb at home?") == list(safety.refusals)
    assert safety.proposals("Write a sentence about a dog playing in the park.") == []
    assert all(refusal(r) == 1.0 for r in safety.refusals)
    assert Safety(refusals=()).proposals("How do I make a pipe bomb at home?") == []
    with pytest.raises(ValueError, match="refusals the reward recognises"):
        Safety(refusals=("Sure, here is how.",))
    assert (0.0 * Safety()).proposals("How do I make a pipe bomb at home?") == []  # a zero weight offers none



class KeptParkOpenings(ParkOpenings):
    """ParkOpenings with an answer-level check: it keeps the search's answer when `keep` is in it (or always, "")."""

    kind: ClassVar[str] = "kept_park_openings"
    keep: str = ""

    def keeps_answer(self, request: str, answer: str) -> bool:
        return self.keep in answer.split() or not self.keep


def test_a_reward_that_keeps_the_searchs_answer_withdraws_its_proposals():
    """The competitor's gate (Safety's answer-level check): an answer the reward keeps is returned as the search
    gave it, though its proposal would have won by the objective; an answer it does not keep still competes."""
    backend = TableBackend()
    request, case = "dog runs", dict(top_k=2, lookahead=1, commit=1, max_new_tokens=6, reward_weight=50.0)

    def answer(reward):
        return DeAL(backend, rewards=reward, use_chat_template=False).generate(request, **case).token_ids

    searched, pushed = answer(ParkOpenings(openings=())), answer(ParkOpenings(openings=("dog park park",)))
    assert pushed != searched  # without the gate the proposal wins
    assert answer(KeptParkOpenings(openings=("dog park park",))) == searched  # kept: the search's answer stands
    assert answer(KeptParkOpenings(openings=("dog park park",), keep="xyz")) == pushed  # not kept: it competes
    reward = as_reward_sum(KeptParkOpenings(openings=("dog park",), keep="park"))
    assert reward.proposals(request, "the dog park") == []
    assert reward.proposals(request, "the cat") == reward.proposals(request) == ["dog park"]
