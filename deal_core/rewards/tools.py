"""Rewards over tool calls: the search enforces a call's format; these score what goes into it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import ClassVar

import regex

from deal_core.constraint import CALL_OPEN
from deal_core.rewards.base import Reward

# A JSON string that is a value: after ": " or "[", or after ", " when an array goes on (", " or "]" follows; a key
# is followed by ": ", and a text cut right after one must not count it). A value still being written ends the text.
_VALUE = regex.compile(r'(?:(?<=: |\[)"((?:[^"\\]|\\.)*)"(?!: )|(?<=, )"((?:[^"\\]|\\.)*)"(?=, |\]))')
_PARAMETER_VALUE = regex.compile(r'(?<=": )"((?:[^"\\]|\\.)*)"(?!: )')  # a parameter's own value, not a list item
_OPEN_VALUE = regex.compile(r'(?<=: |\[)"((?:[^"\\]|\\.)*)$')
_ARGUMENTS = '"arguments": '
# A number value with more decimals than MAX_DECIMALS, or an exponent that opens with 0 (finished or still being
# written): the 135M model padded `5` into `5.00000000000000015555`, then `20` into `20.000000E+00000000000`, until
# the budget cut the call (`deal bench agent`, unit conversions); with the default lookahead of 8 the search sees the
# padding coming and closes the number instead.
MAX_DECIMALS = 6
_PADDED_NUMBER = regex.compile(r'(?<=: |\[|, )-?\d+(?:\.\d{' + str(MAX_DECIMALS + 1) + r',}|(?:\.\d+)?[eE][+-]?0)')


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


_NAME = regex.compile(r'^\s*\{"name": "([^"]*)"')
_WORD = regex.compile(r"[a-z]+")


def _decoded(raw: str) -> str:
    try:
        return _normal(json.loads(f'"{raw}"'))
    except ValueError:
        return _normal(raw)


def _looping(value: str) -> bool:
    """A value that repeats itself: some word of 2+ letters three times or more ("Paris Paris Paris")."""
    words = _WORD.findall(value)
    return any(words.count(w) >= 3 for w in set(words) if len(w) > 1)


def _asked_for(name: str, request: str) -> bool:
    """A word of the tool's name (3+ letters) is in the request: `get_time` for "what time is it in Tokyo"."""
    return any(w in request for w in _WORD.findall(name.lower()) if len(w) > 2)


class ToolArguments(Reward):
    """Share of the string arguments written so far that appear in the request, case and spacing aside (a value
    still being written counts when it is a piece of the request): small models fill arguments with made-up or
    looping text, and copying from the request is usually right ("the weather in Paris" → `{"city": "Paris"}`).
    A parameter's value that repeats an earlier parameter's value in the same call (`from_unit` and `to_unit` both
    "kilometers"), a finished empty string, a value that repeats a word three times, or a number with more than
    `MAX_DECIMALS` decimals or a zero-padded exponent earns nothing (a budget or a loop, not the request, wrote it);
    other numbers are not scored. A call after the first whose tool name shares no word with the request counts as
    one more value that earns nothing (an extra call the request did not ask for). Text without string arguments
    (or padded numbers) scores 1. Range [0, 1]."""

    kind: ClassVar[str] = "tool_arguments"

    def _one(self, prompt: str, text: str) -> float:
        request = _normal(prompt)
        values, credit = [], 0.0
        for index, call in enumerate(text.split(CALL_OPEN)[1:]):
            name = _NAME.match(call)
            if index and name and not _asked_for(name.group(1), request):
                values.append(None)  # an unrequested extra call: no credit
            start = call.find(_ARGUMENTS)
            if start < 0:
                continue
            arguments = call[start + len(_ARGUMENTS):]
            values += [None] * len(_PADDED_NUMBER.findall(arguments))
            # a parameter's value that repeats an earlier parameter's value in this call earns nothing (`from_unit`
            # and `to_unit` both "m"); items of one list may repeat (cards "10" and "10")
            own = [_decoded(v) for v in _PARAMETER_VALUE.findall(arguments)]
            repeats = [v for i, v in enumerate(own) if v in own[:i]]
            for value in (_decoded(a or b) for a, b in _VALUE.findall(arguments)):
                values.append(None if value in repeats and not repeats.remove(value) else value)
            for raw in [v for v in _OPEN_VALUE.findall(arguments) if v.strip()]:
                value = _decoded(raw)  # still being written: a piece of the request is enough
                credit += not _looping(value) and value in request
                values.append(None)
        if not values:
            return 1.0
        for value in values:
            credit += bool(value) and not _looping(value) and value in request
        return credit / len(values)

    def _score(self, prompts: Sequence[str], texts: Sequence[str], is_final: Sequence[bool]) -> list[float]:
        return [self._one(p, t) for p, t in zip(prompts, texts)]
