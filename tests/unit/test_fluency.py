"""The Fluency reward reads the search's own token log-probabilities."""

import math

import pytest

from deal_core import DeAL
from deal_core.errors import RewardError
from deal_core.rewards import Constraint, Fluency, Keywords, rewards_from_cli, rewards_from_json


def test_fluency_is_the_geometric_mean_token_probability_of_the_answer(tiny_lm):
    deal = DeAL(tiny_lm, max_new_tokens=10, top_k=4, lookahead=3)
    result = deal.generate("the dog in the park", rewards=Keywords(["dog"]) + Fluency())
    n = len(result.token_ids) + (result.finish_reason == "eos")
    assert result.rewards["fluency"] == pytest.approx(math.exp(result.logprob / n))
    assert 0 < result.rewards["fluency"] < 1


def test_fluency_outside_a_search_needs_the_logprobs():
    assert Fluency().score("q", ["a b", "c"], logprobs=[0.0, math.log(0.25)]) == [1.0, pytest.approx(0.25)]
    with pytest.raises(RewardError, match="mean token log-probability"):
        Fluency().score("q", "a text")
    gate = Constraint(reward=Fluency(), threshold=0.5)
    assert gate.score("q", ["x", "y"], logprobs=[math.log(0.9), math.log(0.1)]) == [0.0, -math.inf]
    assert Constraint(reward=Keywords(["x"]), threshold=1.0).score("q", "x") == [0.0]  # others need no logprobs


def test_fluency_by_name():
    assert rewards_from_cli(["fluency:0.5"]).spec() == [{"name": "fluency", "weight": 0.5}]
    assert type(rewards_from_json([{"name": "fluency"}]).terms[0].reward) is Fluency


def test_fluency_bound_holds_for_every_continuation_and_is_tight():
    import random

    rng = random.Random(0)
    reward = Fluency()
    for _ in range(500):
        prefix = [-rng.expovariate(1.0) for _ in range(rng.randint(1, 30))]
        more = rng.randint(0, 12)
        bound = reward.upper_bound(sum(prefix), len(prefix), more)
        for extra in range(more + 1):
            rest = [-rng.expovariate(rng.choice([0.5, 5.0, 100.0])) for _ in range(extra)]
            mean = (sum(prefix) + sum(rest)) / (len(prefix) + extra)
            assert reward.score("q", "t", logprobs=[mean])[0] <= bound + 1e-12
    assert reward.upper_bound(-30.0, 20, 10) == pytest.approx(math.exp(-1.0)) and reward.bounds()[1] == 1.0


def test_fluency_keeps_pruning_working(tiny_lm):
    """With Fluency's range (1) as its bound, λ·1 more would let nearly every candidate through; its own bound
    prunes as before, with the same tokens as the unpruned search."""
    deal = DeAL(tiny_lm, max_new_tokens=16, top_k=8, lookahead=4, reward_weight=3.0)
    rewards = Keywords(["dog"]) + Fluency()
    pruned, full = (deal.generate("the dog in the park", rewards=rewards, prune=p) for p in (True, False))
    assert pruned.token_ids == full.token_ids
    assert pruned.stats.candidates_pruned > 0 and pruned.stats.tokens_evaluated < full.stats.tokens_evaluated
