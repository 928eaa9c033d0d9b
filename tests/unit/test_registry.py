"""The explicit reward registry: names, lazy imports, CLI parsers kept apart from the reward classes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from typing import ClassVar

import pytest

from deal_core.errors import RewardSpecError
from deal_core.rewards import REGISTRY, Keywords, Reward, register_reward, reward_from_spec, rewards_from_cli


def test_every_registered_name_is_its_class_kind():
    assert list(REGISTRY) == sorted(REGISTRY) and len(REGISTRY) == 15
    aliases = {"harmless": "safety", "offensive": "inoffensive"}  # old and other names of two rewards
    for name in REGISTRY:
        assert REGISTRY[name].kind == aliases.get(name, name) and issubclass(REGISTRY[name], Reward)


def test_a_name_works_whatever_was_imported_before():
    code = ("from deal_core.rewards.registry import reward_from_spec, parse_reward_spec;"
            "print(type(parse_reward_spec('length=max=5').reward).__name__,"
            " type(reward_from_spec({'name': 'regex', 'pattern': 'a'}).reward).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["Length", "Regex"]


def test_defining_a_subclass_does_not_register_it_but_register_reward_does():
    class Shouting(Reward):
        kind: ClassVar[str] = "shouting"

        def _score(self, prompts: Sequence[str], texts: Sequence[str], is_final: Sequence[bool]) -> list[float]:
            return [float(t.isupper()) for t in texts]

    assert "shouting" not in REGISTRY  # subclassing alone never makes code nameable from a spec
    with pytest.raises(RewardSpecError, match="unknown reward 'shouting'"):
        reward_from_spec({"name": "shouting"})
    register_reward(Shouting)
    try:
        assert reward_from_spec({"name": "shouting", "weight": 2}).weight == 2
        assert rewards_from_cli(["shouting:0.5"]).terms[0].reward == Shouting()
        with pytest.raises(RewardSpecError, match="takes no argument"):
            rewards_from_cli(["shouting=loud"])
    finally:
        REGISTRY._targets.pop("shouting"), REGISTRY._cli.pop("shouting")
    with pytest.raises(RewardSpecError, match="needs a Reward subclass"):
        register_reward(Keywords(["a"]))


def test_cli_parsers_live_in_the_registry():
    reward = rewards_from_cli(["blocklist=hard:foo,bar", "length=min=2,max=9", "judge"]).terms
    assert reward[0].reward.hard and reward[0].reward.terms == ["foo", "bar"]
    assert (reward[1].reward.min_words, reward[1].reward.max_words) == (2, 9)
    assert not any(hasattr(type(t.reward), "from_cli") for t in reward)
