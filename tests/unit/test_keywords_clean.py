"""`Keywords` credits a word only where a sentence uses it: adversarial texts that list, quote, title, loop or talk
about the words earn nothing; the plain count stays reachable as `clean=False`; the bounds hold for the search."""

import random

import pytest

from deal_core.bench import quality
from deal_core.rewards import Keywords, reward_from_spec, rewards_from_cli
from deal_core.rewards.prose import clean_use, is_list, pieces

WORDS = ["dance", "kid", "room"]


@pytest.mark.parametrize("text", [
    'A: "Dance, Kid, Room"',  # the demo's reward-hacked answer
    "Dance, kid, room.",
    "A dance, a kid, a room",
    "'Dance', 'kid', 'room'",
    "Words: dance; kid; room.",
    "# Dance Kid Room\n",
    "**Dance Kid Room**\nIt was fun.",
    "- dance\n- kid\n- room",
    "1. dance\n2. kid\n3. room",
    "dance\nkid\nroom\n",
    "Kid. Dance. Room.",
    "The kid dance room.",
    'In this sentence, the word "dance" is used twice, "kid" once and "room" once.',
    "The words dance, kid and room appear in this sentence.",
    "This sentence uses the keywords dance, kid and room.",
    "dance dance dance kid kid kid room room room",
    "A kid, a dance, a room, a dancer in the room.",
])
def test_texts_that_only_list_quote_title_or_talk_about_the_words_earn_nothing(text):
    reward = Keywords(WORDS)
    assert reward.score("p", text) == [0.0], reward.use(text)
    assert Keywords(WORDS, clean=False).score("p", text) == [1.0]  # the plain count is fooled by every one of them


@pytest.mark.parametrize(("text", "expected"), [
    ("The kid danced in the room.", 1.0),
    ('"The kids danced around the room."', 1.0),  # a quoted sentence is still a sentence
    ("Here is a sentence with all the words: the kid danced in his room.", 1.0),  # a preamble is harmless
    ("Sure! The kid loved to dance in his room: he did it every day.", 1.0),
    ("The kid, the dog and the cat danced in the big room.", 1.0),  # a sentence with a series is not a list
    ("A kid is dancing.", 2 / 3),
    ("The kid danced in the room. Dance, kid, room.", 0.5),  # a sentence, then a list: credit, halved
    ("The kid danced in the room. The kid danced in the room.", 0.5),  # a loop: credit, halved
    ("The kid dances and dances and dances in the room", 0.0),  # the only sentence loops
])
def test_sentences_earn_credit_and_gaming_beside_them_halves_it(text, expected):
    assert Keywords(WORDS).score("p", text) == [pytest.approx(expected)]


def test_a_keyword_that_is_a_meta_noun_is_used_not_talked_about():
    assert Keywords(["judge", "prison", "sentence"]).score(
        "p", "The judge read the sentence before sending him to prison.") == [1.0]
    assert Keywords(["kid", "word"]).score("p", "The kid said a word in his room.") == [1.0]
    assert Keywords(["dog"]).score("p", "a dog") == [1.0]  # a one-phrase answer that uses one word is no list


def test_the_reward_and_the_judge_share_one_definition_with_their_own_inflections():
    text = "A surfer fell off the boards while waves ran. Surfer, wave, board."
    concepts = ["fall", "surfer", "wave", "board"]
    verdict = quality.judge(concepts, text)
    assert verdict["clean_coverage"] == 1.0 and verdict["lists_words"] and verdict["degenerate"]
    assert not verdict["clean_all_concepts"]
    assert Keywords(concepts).use(text).clean == [False, True, True, True]  # the reward's stemmer misses "fell"
    meta = quality.judge(WORDS, 'The word "dance" appears once, and the kid is in the room.')
    assert meta["meta"] and not meta["clean_all_concepts"]


def test_pieces_name_each_way_of_gaming():
    kinds = [p.kind for p in pieces('Title Line\nA: "x, y, z". The word "kid" is here. It runs and runs and runs.')]
    assert kinds == ["heading", "prose", "list", "meta", "meta", "loop"]  # "A" is a short prose piece
    assert is_list("Brick, mortar, wall and build.") and not is_list("She bought apples, pears and plums today.")
    use = clean_use("Dance, kid, room.", WORDS, lambda k, ws: k in ws)
    assert use.listed and use.flawed and not use.meta and use.anywhere == [True] * 3


def test_the_option_travels_through_specs_and_stays_inside_the_bounds():
    assert reward_from_spec({"name": "keywords", "keywords": ["a"], "clean": False}).reward == Keywords(["a"], clean=False)
    assert rewards_from_cli(["keywords=dog,park"]).terms[0].reward.clean
    rng = random.Random(0)
    vocab = WORDS + ["the", "a", "in", ",", ".", "\n", '"', ":", "word", "sentence", "-", "#", "and"]
    reward = Keywords(WORDS)
    texts = [" ".join(rng.choice(vocab) for _ in range(rng.randint(0, 30))) for _ in range(300)]
    low, high = reward.bounds()
    assert all(low <= v <= high for v in reward.score("p", texts, [False] * len(texts)))
    assert not reward.tightens_bound  # the search prunes with bounds()[1]: 1 is an honest ceiling
