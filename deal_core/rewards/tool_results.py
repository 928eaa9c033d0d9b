"""`ToolResultUse`: how much of the tool results an answer carries, for the answer turn after tool calls.

Measured on the agent bench (`deal bench agent`, tuning half, SmolLM2-135M): after a call's result the 135M model
often answers from its own prior instead of the result ("The weather in Sydney is a mix of sunny and very hot." after
`Sunny, 25 degrees`; "Norway is a Nordic country…" after `capital Oslo, …`) or writes call JSON again. The decoder
adds this reward by default on such turns (`tool_result_weight`, see `deal_core/tool_turns.py`), so the search
prefers continuations that state the results' values.

What counts as a result's content: its numbers ("-3", "6.21") and its words of 3+ letters, leaving out those the
request already contains (for "Convert 10 kilometers to miles." the result "10 kilometers is 6.21 miles" has one
item, 6.21). An answer carries an item when it holds it as a whole word or number, case aside ("130" does not carry
13). Score: the share of items carried; a result without items (all in the request) scores 1, an empty text 0. An
answer that restates the request (holds `ECHO_WORDS` of its words in a row, or all of a shorter request) scores half:
after two calls the 135M model answered "Drizzle, 12 degrees\n\nIs it warmer in Cairo or in London?", the last
result and the question copied from the prompt (`deal bench agent`, dev split).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import ClassVar

import regex
from pydantic import Field

from deal_core.rewards.base import Reward

ECHO_WORDS = 5
# a number (sign, decimals) not glued to letters or other digits; a word of letters
_ITEM = regex.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w]|\.\d)|[^\W\d_]{3,}")


@functools.lru_cache(maxsize=1024)
def items_of(text: str) -> frozenset[str]:
    """The numbers and 3+-letter words of `text`, lower-cased."""
    return frozenset(m.lower() for m in _ITEM.findall(text))


def _carried(text: str) -> frozenset[str]:
    """Every number and word of `text` (any length), lower-cased: what an answer holds."""
    return frozenset(m.lower() for m in regex.findall(r"-?\d+(?:\.\d+)?|[^\W\d_]+", text))


def restates(request: str, text: str) -> bool:
    """`text` holds `ECHO_WORDS` words of `request` in a row (all of them when the request is shorter)."""
    words = regex.findall(r"\w+", request.lower())
    said = " " + " ".join(regex.findall(r"\w+", text.lower())) + " "
    run = min(ECHO_WORDS, len(words))
    return run > 0 and any(f" {' '.join(words[i:i + run])} " in said for i in range(len(words) - run + 1))


class ToolResultUse(Reward):
    """Share of the tool results' content (numbers, and words of 3+ letters the request does not already hold) that
    the text states. Range [0, 1]."""

    kind: ClassVar[str] = "tool_result_use"
    positional: ClassVar[str | None] = "results"
    optional_proposals: ClassVar[bool] = True  # an engine without WholeSequence verbs answers without them
    results: tuple[str, ...] = Field(min_length=1, description="The tool results the answer should use.")
    opening: str = Field("", description="An answer stating the results, proposed to the search "
                                         "(`tool_turns.answer_opening`); empty proposes nothing.")

    def proposals(self, request: str) -> list[str]:
        """The answer that states the results, weighed against the search's by the objective."""
        return [self.opening] if self.opening.strip() else []

    def requires_proposal(self, request: str, answer: str) -> bool:
        """After two results or more, an answer that misses a value the proposed answer states (its numbers, else
        its words the request lacks) gives way to the proposed answers: the request asked for those results (both
        temperatures of a comparison, a chain's last result)."""
        if len(self.results) < 2 or not self.opening.strip():
            return False
        numbers = {i for i in items_of(self.opening) if i[-1].isdigit()}
        wanted = numbers or items_of(self.opening) - items_of(request)
        return not wanted <= _carried(answer)

    def _one(self, prompt: str, text: str) -> float:
        wanted = frozenset().union(*(items_of(r) for r in self.results)) - items_of(prompt)
        if not wanted:
            return 1.0
        if not text.strip():
            return 0.0
        held = _carried(text)
        return len(wanted & held) / len(wanted) * (0.5 if restates(prompt, text) else 1.0)

    def _score(self, prompts: Sequence[str], texts: Sequence[str], is_final: Sequence[bool]) -> list[float]:
        return [self._one(p, t) for p, t in zip(prompts, texts)]
