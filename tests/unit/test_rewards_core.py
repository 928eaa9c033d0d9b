import math
from collections.abc import Sequence
from typing import ClassVar

import pytest

from deal_core.errors import RewardError, RewardSpecError
from deal_core.rewards import (
    Keywords,
    Length,
    Reward,
    RewardSum,
    as_reward_sum,
    parse_reward_spec,
    reward_from_spec,
    rewards_from_json,
)


class Fixed(Reward):
    kind: ClassVar[str] = ""
    values: list[float]

    def bounds(self):
        return (-math.inf, math.inf)

    def _score(self, prompts: Sequence[str], texts: Sequence[str], is_final: Sequence[bool]):
        return self.values


class Broken(Reward):
    kind: ClassVar[str] = ""

    def _score(self, prompts, texts, is_final):
        raise KeyError("boom")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The kids danced in the room.", 1.0),
        ("A kid is dancing.", 2 / 3),
        ("Nothing relevant here.", 0.0),
        ("ROOMS full of Dancers and a KID", 1.0),
    ],
)
def test_keywords_counts_inflections(text, expected):
    assert Keywords(keywords=["dance", "kid", "room"]).score("p", text) == [pytest.approx(expected)]


def test_keywords_inflection_rules():
    k = Keywords(keywords=["use", "run", "fly", "brush"])
    assert k.present("He used it while running; flies brushed past") == [True, True, True, True]
    assert k.present("bus runt flew") == [False, False, False, False]


def test_length_penalises_partial_text_only_for_what_it_cannot_fix():
    r = Length(min_words=5, max_words=8)
    short, ok, long_ = "one two", "one two three four five six", "w " * 12
    assert r.score("p", [short, ok, long_], [False, False, False]) == [1.0, 1.0, pytest.approx(0.5)]
    assert r.score("p", [short, ok], [True, True]) == [pytest.approx(0.4), 1.0]
    t = Length(target_words=4)
    assert t.score("p", ["a b", "a b"], [False, True]) == [1.0, pytest.approx(0.5)]


def test_length_requires_a_constraint_and_consistent_bounds():
    with pytest.raises(ValueError, match="at least one"):
        Length()
    with pytest.raises(ValueError, match="above max_words"):
        Length(min_words=9, max_words=3)


def test_weighted_sum_reports_components_and_totals():
    combo = 0.7 * Keywords(keywords=["dog"]) + 0.3 * Length(max_words=2)
    scores = combo.evaluate(["p", "p"], ["a dog", "a big cat sat"], True)
    assert scores.components == {"keywords": [1.0, 0.0], "length": [1.0, 0.0]}
    assert scores.total == [pytest.approx(1.0), pytest.approx(0.0)]
    assert combo.bounds() == (0.0, pytest.approx(1.0))
    assert (2 * combo).terms[0].weight == pytest.approx(1.4)


def test_negative_weights_flip_bounds_and_duplicate_labels_are_numbered():
    combo = Keywords(keywords=["a"]) + (-2.0) * Keywords(keywords=["b"])
    assert combo.bounds() == (-2.0, 1.0)
    assert combo.labels == ["keywords", "keywords#2"]


def test_as_reward_sum_accepts_none_single_and_lists():
    k = Keywords(keywords=["x"])
    assert not as_reward_sum(None)
    assert len(as_reward_sum(k).terms) == 1
    assert len(as_reward_sum([k, 2 * k]).terms) == 2
    assert sum([k, k]).terms[1].weight == 1.0
    with pytest.raises(RewardSpecError):
        as_reward_sum(["keywords"])


def test_reward_failures_are_typed_and_name_the_reward():
    with pytest.raises(RewardError, match="'broken'.*KeyError"):
        Broken().score("p", ["x"])
    with pytest.raises(RewardError, match="returned 2 scores for 1 texts"):
        Fixed(values=[1.0, 2.0]).score("p", ["x"])
    with pytest.raises(RewardError, match="nan"):
        Fixed(values=[math.nan]).score("p", ["x"])
    with pytest.raises(RewardError, match="inf"):
        Fixed(values=[-math.inf]).score("p", ["x"])  # only hard constraints may veto


def test_cli_and_json_specs_round_trip():
    wr = parse_reward_spec("keywords=dog,park:0.3")
    assert wr.weight == pytest.approx(0.3) and wr.reward.keywords == ["dog", "park"]
    assert parse_reward_spec("length=min=3,max=9").reward == Length(min_words=3, max_words=9)
    combo = 0.5 * Keywords(keywords=["a", "b"]) + Length(max_words=3)
    assert rewards_from_json(combo.spec()) == combo
    assert isinstance(combo, RewardSum)


@pytest.mark.parametrize(
    ("spec", "needle"),
    [("nope:1", "unknown reward 'nope'"), ("keywords", "non-blank"), ("keywords:abc", "not a number"),
     ("length=foo", "min=N")],
)
def test_bad_cli_specs(spec, needle):
    with pytest.raises(RewardSpecError, match=needle):
        parse_reward_spec(spec)


def test_json_specs_cannot_name_arbitrary_callables():
    with pytest.raises(RewardSpecError, match="unknown reward"):
        reward_from_spec({"name": "os.system", "command": "true"})
    with pytest.raises(RewardSpecError, match="weight"):
        reward_from_spec({"name": "keywords", "keywords": ["a"], "weight": "inf"})
