"""The CommonGen quality judge: independent coverage, word lists, repetition loops; the hard split."""

import pytest

from deal_core.bench import quality
from deal_core.bench.data import DataError, load_commongen


@pytest.mark.parametrize("text", [
    "A barrel, a foot, a grape, a stomp.",
    "The dog, falling, leaving, running.",
    "Brick, mortar, wall and build.",
    "hammer\ntire\ncoach\nuse",
])
def test_word_lists_are_degenerate(text):
    assert quality.is_word_list(text) and quality.degenerate(text)


@pytest.mark.parametrize("text", [
    "A coach, hammer, hit, tire, use, a well-known sportsperson, a well-known sportsperson, a well-known",
    "The dog runs and runs and runs and runs.",
    "go go go home",
])
def test_loops_are_degenerate(text):
    assert quality.is_loop(text) and quality.degenerate(text)


@pytest.mark.parametrize("text", [
    "The workers built a brick wall with mortar.",
    "She bought apples, pears and plums at the market before walking home in the rain.",
    "A surfer falls off his board as a big wave crashes over him.",
])
def test_sentences_are_not_degenerate(text):
    assert not quality.degenerate(text)


def test_coverage_counts_inflections_with_its_own_rules():
    concepts = ["fall", "surfer", "wave", "board", "run"]
    assert quality.covered(concepts, "A surfer fell off the boards while waves ran.") == [True] * 5
    assert quality.covered(["stop", "study", "dance", "knife"], "stopped studies dancing knives") == [True] * 4
    assert quality.covered(["fall", "wave"], "The waiver was false.") == [False, False]
    verdict = quality.judge(["brick", "wall"], "Brick, wall, brick, wall.")
    assert verdict["all_concepts"] and verdict["degenerate"] and not verdict["clean_all_concepts"]
    assert quality.judge(["brick", "wall"], "He built a brick wall.")["clean_all_concepts"]


def test_hard_split_mixes_four_and_five_concept_sets():
    hard = load_commongen(limit=10, split="hard")
    assert [len(s.concepts) for s in hard] == [4, 5] * 5
    assert all(len(s.concepts) == 3 for s in load_commongen(limit=20, split="easy"))
    assert len(load_commongen(split="hard")) + len(load_commongen(split="easy")) == len(load_commongen())
    with pytest.raises(DataError, match="unknown CommonGen split 'medium'"):
        load_commongen(split="medium")
