"""Where a text *uses* words in prose: the one definition of "clean" keyword use.

A text is cut into pieces (lines, then sentences, then the parts either side of a colon; a quotation is a piece of
its own). Each piece gets a kind:

- ``prose``: a sentence (or a sentence still being written) that may earn keyword credit;
- ``list``: three or more short items (``Dance, Kid, Room``; ``A barrel, a foot, a grape, a stomp``) or a bullet;
- ``heading``: a ``#`` line, or a line that ends without punctuation before another line starts;
- ``quote``: a quotation that is not itself a sentence (``the word "dance"``, ``"Dance, Kid, Room"``);
- ``repeat``: the words of an earlier piece again; ``loop``: a piece that repeats itself (``runs and runs and runs``);
- ``meta``: a sentence about the words or the sentence itself (``In this sentence, the word X is used twice``).

`clean_use` says, per keyword, whether some prose piece uses it, and whether the text games the words (lists,
quotes, titles or talks about them, or loops). `Keywords` (the reward) and the CommonGen judge both call it, each
with its own idea of when a word form matches a keyword.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

WORD = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z]+)?")
MIN_WORDS = 4  # a prose piece has at least this many words ...
MIN_OTHER_WORDS = 2  # ... of which this many are not keywords ("The kid dance room." is not a sentence)
# A sentence about the words or about itself: "the word X", "these words", "in this sentence", "the keywords", "all
# the concepts". Group "noun" is the noun, so that a keyword that is itself such a noun ("sentence") is exempt.
META_TALK = re.compile(r"\b(?:key ?words?|concepts?|(?:this|the|these|those|each|every|all|given|listed|following|"
                  r"above|your|my|of) (?:(?:given|listed|above|following|three|four|five|six) )?"
                  r"(?P<noun>words?|terms?|sentences?|phrases?))\b", re.IGNORECASE)
_QUOTE = re.compile(r"\"([^\"]*)(?:\"|$)|\u201c([^\u201d]*)(?:\u201d|$)")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|:(?:\s+|$)|;\s+")
_ITEM_SPLIT = re.compile(r"[,;/&]|\band\b|\bor\b", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"qq(\d+)qq")
_BULLET = re.compile(r"^\s*(?:[-*\u2022+]|\d+[.)])\s+")
PROSE, LIST, HEADING, QUOTE, REPEAT, LOOP, META = "prose", "list", "heading", "quote", "repeat", "loop", "meta"


@dataclass(frozen=True)
class Piece:
    text: str
    kind: str

    @property
    def words(self) -> list[str]:
        return [w.lower() for w in WORD.findall(self.text)]


@dataclass(frozen=True)
class Use:
    """How a text uses its keywords: `clean[i]` (in prose), `anywhere[i]`, and which ways it games them."""

    clean: list[bool]
    anywhere: list[bool]
    gamed: set[str] = field(default_factory=set)  # kinds of non-prose pieces that hold a keyword
    loop: bool = False

    @property
    def meta(self) -> bool:
        return META in self.gamed

    @property
    def listed(self) -> bool:
        return bool(self.gamed & {LIST, HEADING, QUOTE})

    @property
    def flawed(self) -> bool:
        """Lists, quotes, titles or talks about the words, or loops."""
        return self.loop or bool(self.gamed)


def is_list(text: str) -> bool:
    """Three or more items (split at commas, semicolons, slashes, "and", "or") of at most two words each that make
    up at least half of the words: `Dance, Kid, Room` / `A barrel, a foot, a grape, a stomp`."""
    items = [WORD.findall(p) for p in _ITEM_SPLIT.split(text)]
    items = [i for i in items if i]
    short = [i for i in items if len(i) <= 2]
    total = sum(len(i) for i in items)
    return len(short) >= 3 and sum(len(i) for i in short) >= 0.5 * total


def is_loop(text: str) -> bool:
    """A repetition loop: a run of three words that occurs twice, or one word three times in a row."""
    ws = [w.lower() for w in WORD.findall(text)]
    grams = [tuple(ws[i:i + 3]) for i in range(len(ws) - 2)]
    if len(grams) != len(set(grams)):
        return True
    return any(ws[i] == ws[i + 1] == ws[i + 2] for i in range(len(ws) - 2))


def _is_heading(line: str, last: bool) -> bool:
    if line.startswith("#"):
        return True
    bare = line.strip("*_ ")
    return not last and bool(bare) and bare[-1] not in ".!?:;,\"\u201d)" and len(WORD.findall(bare)) <= 12


def _split_quotes(line: str) -> tuple[str, list[str]]:
    """The line with each quotation replaced by a placeholder word (`qq0qq`, `qq1qq`, ...), and the quotations."""
    quotes: list[str] = []

    def hold(match: re.Match) -> str:
        quotes.append(match.group(1) if match.group(1) is not None else match.group(2))
        return f" qq{len(quotes) - 1}qq "

    return _QUOTE.sub(hold, line), quotes


def talks_about_words(text: str, exempt: Callable[[str], bool] = lambda noun: False) -> bool:
    """Whether `text` is about the words or itself ("the word X", "in this sentence"); `exempt(noun)`: a noun that is
    one of the keywords ("sentence" in a set like judge, prison, sentence) does not count."""
    return any(not (m.group("noun") and exempt(m.group("noun").lower())) for m in META_TALK.finditer(text))


def _kind(text: str, is_meta: Callable[[str], bool]) -> str:
    if is_meta(text):  # first: a sentence about the words often lists or loops as well
        return META
    if is_loop(text):
        return LOOP
    if is_list(text):
        return LIST
    return PROSE


def _part_pieces(part: str, quotes: list[str], bullet: bool, is_meta: Callable[[str], bool]) -> list[Piece]:
    """A sentence and the quotations it holds: a quoted sentence is prose; a quoted word or list is not, nor
    anything quoted in a sentence about the words."""
    kind = _kind(part, is_meta)
    found = [Piece(part, LIST if bullet and len(WORD.findall(part)) < MIN_WORDS else kind)]
    if not WORD.search(_PLACEHOLDER.sub("", part)):  # nothing but a quotation
        found = []
    for index in _PLACEHOLDER.findall(part):
        quote = quotes[int(index)]
        quoted = META if kind == META else _kind(quote, is_meta)
        short = quoted == PROSE and len(WORD.findall(quote)) < MIN_WORDS
        found.append(Piece(quote, QUOTE if short else quoted))
    return found


def pieces(text: str, is_meta: Callable[[str], bool] = talks_about_words) -> list[Piece]:
    """The text's pieces, in order, each with its kind (see the module docstring)."""
    out: list[Piece] = []
    lines = [line for line in text.replace("\r", "").split("\n") if line.strip()]
    for n, line in enumerate(lines):
        if _is_heading(line.strip(), last=n == len(lines) - 1):
            out.append(Piece(line, HEADING))
            continue
        bullet = bool(_BULLET.match(line))
        outer, quotes = _split_quotes(_BULLET.sub("", line))
        for part in _SENTENCE_END.split(outer):
            if WORD.search(part):
                out.extend(_part_pieces(part, quotes, bullet, is_meta))
    seen: set[tuple[str, ...]] = set()
    for i, piece in enumerate(out):
        key = tuple(piece.words)
        if key in seen and len(key) > 1:
            out[i] = Piece(piece.text, REPEAT)
        seen.add(key)
    return out


def clean_use(text: str, keywords: Sequence[str], matches: Callable[[str, str], bool]) -> Use:
    """Per keyword, whether a prose piece of `text` uses it, whether it occurs anywhere, and how the text games the
    words. `matches(part, word)`: whether the lowercased `word` is a form of `part`, one word of a keyword (a keyword
    of several words needs each of them in the same piece)."""
    parts = [[p.lower() for p in WORD.findall(k)] or [k.lower()] for k in keywords]
    hits: dict[str, frozenset[tuple[int, int]]] = {}

    def hit(word: str) -> frozenset[tuple[int, int]]:
        if word not in hits:
            hits[word] = frozenset((i, j) for i, ps in enumerate(parts) for j, p in enumerate(ps) if matches(p, word))
        return hits[word]

    def held(ws: list[str]) -> list[bool]:
        found = set().union(*(hit(w) for w in ws)) if ws else set()
        return [all((i, j) in found for j in range(len(ps))) for i, ps in enumerate(parts)]

    def is_meta(piece: str) -> bool:  # a meta noun that is one of the keywords ("sentence") does not count
        return talks_about_words(piece, lambda noun: bool(hit(noun)))

    found = pieces(text, is_meta)
    clean = [False] * len(keywords)
    gamed: set[str] = set()
    for piece in found:
        ws = piece.words
        has = held(ws)
        if not any(has):
            continue
        keyword_words = sum(bool(hit(w)) for w in ws)
        sentence = len(ws) >= MIN_WORDS and len(ws) - keyword_words >= MIN_OTHER_WORDS
        alone = len(found) == 1 and sum(has) == 1  # a one-phrase answer using one word: "a dog"
        if piece.kind == PROSE and (sentence or alone):
            clean = [c or h for c, h in zip(clean, has)]
        elif piece.kind != PROSE:
            gamed.add(piece.kind)
    anywhere = held([w.lower() for w in WORD.findall(text)])
    return Use(clean=clean, anywhere=anywhere, gamed=gamed, loop=is_loop(text))
