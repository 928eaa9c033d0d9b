"""How good a CommonGen answer is, judged independently of the Keywords reward the search optimises.

`covers` has its own inflection rules (regular suffixes plus a table of irregular verbs and plurals) instead of the
reward's stemmer, so a quirk of the reward cannot be mistaken for coverage. Where a word counts as *used* — in a
sentence, not in a list, quotation, heading, loop or a sentence about the words — is the one definition in
`deal_core/rewards/prose.py`, shared with the `Keywords` reward. `degenerate` names the ways a keyword reward is
gamed: listing the words (bare, quoted or as a heading) instead of writing a sentence, and looping until the budget
ends; `meta` a sentence that talks about the words ("the word X is used twice").
"""

from __future__ import annotations

import re
from functools import lru_cache

from deal_core.rewards.prose import clean_use
from deal_core.rewards.prose import is_loop as _is_loop

_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
_VOWELS = set("aeiou")
# Irregular forms of words that appear in CommonGen concept sets (verb pasts/participles, plurals).
_IRREGULAR = {
    "be": "am is are was were been being", "begin": "began begun", "bite": "bit bitten", "blow": "blew blown",
    "break": "broke broken", "bring": "brought", "build": "built", "buy": "bought", "catch": "caught",
    "child": "children", "choose": "chose chosen", "come": "came", "cut": "cut", "dig": "dug", "do": "did done does",
    "draw": "drew drawn", "drink": "drank drunk", "drive": "drove driven", "eat": "ate eaten", "fall": "fell fallen",
    "feed": "fed", "feel": "felt", "fight": "fought", "find": "found", "fly": "flew flown flies", "foot": "feet",
    "forget": "forgot forgotten", "freeze": "froze frozen", "get": "got gotten", "give": "gave given",
    "go": "went gone goes", "goose": "geese", "grow": "grew grown", "hang": "hung", "have": "had has",
    "hear": "heard", "hide": "hid hidden", "hit": "hit", "hold": "held", "keep": "kept", "kneel": "knelt",
    "knife": "knives", "know": "knew known", "lay": "laid", "lead": "led", "leaf": "leaves", "leave": "left",
    "lend": "lent", "lie": "lay lain lying", "light": "lit", "lose": "lost", "make": "made", "man": "men",
    "meet": "met", "mouse": "mice", "pay": "paid", "person": "people", "put": "put", "read": "read", "ride": "rode ridden",
    "ring": "rang rung", "rise": "rose risen", "run": "ran", "say": "said", "see": "saw seen", "sell": "sold",
    "send": "sent", "set": "set", "shake": "shook shaken", "shine": "shone", "shoot": "shot", "shut": "shut",
    "sing": "sang sung", "sink": "sank sunk", "sit": "sat", "sleep": "slept", "slide": "slid", "speak": "spoke spoken",
    "spend": "spent", "spin": "spun", "stand": "stood", "steal": "stole stolen", "stick": "stuck", "sting": "stung",
    "strike": "struck", "swim": "swam swum", "swing": "swung", "take": "took taken", "teach": "taught",
    "tear": "tore torn", "tell": "told", "think": "thought", "throw": "threw thrown", "tooth": "teeth",
    "wake": "woke woken", "wear": "wore worn", "wife": "wives", "win": "won", "woman": "women", "wind": "wound",
    "write": "wrote written",
}


def forms(concept: str) -> set[str]:
    """The spellings that count as using `concept`: itself, regular -s/-es/-ed/-ing forms, irregular forms."""
    c = concept.lower()
    out = {c, c + "s", c + "es", c + "ed", c + "ing", c + "er", c + "ers"}
    if c.endswith("e"):
        out |= {c + "d", c[:-1] + "ing", c + "r", c + "rs"}
    if c.endswith("y") and len(c) > 2 and c[-2] not in _VOWELS:
        out |= {c[:-1] + "ies", c[:-1] + "ied"}
    if len(c) >= 3 and c[-1] not in _VOWELS | set("wxy") and c[-2] in _VOWELS and c[-3] not in _VOWELS:
        out |= {c + c[-1] + "ed", c + c[-1] + "ing", c + c[-1] + "er", c + c[-1] + "ers"}
    if c.endswith("ie"):
        out.add(c[:-2] + "ying")
    if c.endswith(("f", "fe")):
        out.add(c.rstrip("e")[:-1] + "ves")
    out |= set(_IRREGULAR.get(c, "").split())
    return out


def covered(concepts: list[str], text: str) -> list[bool]:
    """Per concept, whether the text uses it (a multi-word concept needs each of its words)."""
    text_words = {w.lower() for w in _WORD.findall(text)}
    return [all(forms(part) & text_words for part in _WORD.findall(c)) for c in concepts]


def coverage(concepts: list[str], text: str) -> float:
    hits = covered(concepts, text)
    return sum(hits) / len(hits)


def is_word_list(text: str) -> bool:
    """'A barrel, a foot, a grape, a stomp.' / 'The dog, falling, leaving, running.': three or more short items
    separated by commas, semicolons, slashes or line breaks that make up most of the answer."""
    items = [p.strip() for p in re.split(r"[,;/\n]|\band\b|\bor\b", text.strip().rstrip(".!?")) if p.strip()]
    short = [p for p in items if len(_WORD.findall(p)) <= 3]
    n_words = len(_WORD.findall(text))
    return len(short) >= 3 and sum(len(_WORD.findall(p)) for p in short) >= 0.6 * n_words


def is_loop(text: str) -> bool:
    """A repetition loop: a run of three or more words that occurs twice, or one word three times in a row."""
    return _is_loop(text)


@lru_cache(maxsize=1 << 16)
def _uses(part: str, word: str) -> bool:
    """Whether `word` is one of the judge's own forms of `part` (one word of a concept)."""
    return word in _forms(part)


@lru_cache(maxsize=1 << 12)
def _forms(part: str) -> frozenset[str]:
    return frozenset(forms(part))


def degenerate(text: str, concepts: list[str] | None = None) -> bool:
    """A word list, a repetition loop, or (given the concepts) a list, quote or heading that holds one of them."""
    listed = concepts is not None and clean_use(text, concepts, _uses).listed
    return is_word_list(text) or is_loop(text) or listed


def judge(concepts: list[str], text: str) -> dict[str, float | bool]:
    """Plain coverage (a concept anywhere) and clean coverage (a concept used in a sentence), each soft (share) and
    hard (every concept); degenerate (lists or loops) and meta (talks about the words). A clean answer uses every
    concept in sentences and is neither degenerate nor meta."""
    use = clean_use(text, concepts, _uses)
    cov = coverage(concepts, text)
    word_list, loop = is_word_list(text), is_loop(text)
    bad = word_list or loop or use.listed
    return {"coverage": cov, "all_concepts": cov == 1.0, "clean_coverage": sum(use.clean) / len(concepts),
            "degenerate": bad, "word_list": word_list, "loop": loop, "lists_words": use.listed, "meta": use.meta,
            "clean_all_concepts": all(use.clean) and not bad and not use.meta}
