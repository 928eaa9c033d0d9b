"""A hostile reward on the real model: the caller who sent it gets a RewardError, everyone else carries on."""

import pytest

from deal_core.rewards import Keywords
from tests.unit.test_hostile_specs import hostile_and_bystander


@pytest.mark.slow
def test_a_catastrophic_pattern_does_not_stall_other_callers_of_the_real_model(embedded_lm):
    out = hostile_and_bystander(embedded_lm, "Write a sentence about a dog in a park.", Keywords(["dog", "park"]),
                                max_new_tokens=16, top_k=5, lookahead=5)
    assert "took over 0.5s" in str(out["error"]) and out["attack_s"] < 2
    assert out["text"] == out["solo"]
    assert out["bystander_s"] < out["solo_s"] + 2, out
