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
_OPEN_VALUE = regex.compile(r'(?<=: |\[)"((?:[^"\\]|\\.)*)$')
_ARGUMENTS = '"arguments": '


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


class ToolArguments(Reward):
    """Share of the string arguments written so far that appear in the request, case and spacing aside (a value
    still being written counts when it is a piece of the request): small models fill arguments with made-up or
    looping text, and copying from the request is usually right ("the weather in Paris" → `{"city": "Paris"}`).
    Text without string arguments scores 1. Range [0, 1]."""

    kind: ClassVar[str] = "tool_arguments"

    def _one(self, prompt: str, text: str) -> float:
        values = []
        for call in text.split(CALL_OPEN)[1:]:
            start = call.find(_ARGUMENTS)
            if start >= 0:
                arguments = call[start + len(_ARGUMENTS):]
                found = [a or b for a, b in _VALUE.findall(arguments)] + _OPEN_VALUE.findall(arguments)
                for raw in found:
                    try:
                        values.append(json.loads(f'"{raw}"'))
                    except ValueError:
                        values.append(raw)
        values = [_normal(v) for v in values if v.strip()]
        if not values:
            return 1.0
        request = _normal(prompt)
        return sum(v in request for v in values) / len(values)

    def _score(self, prompts: Sequence[str], texts: Sequence[str], is_final: Sequence[bool]) -> list[float]:
        return [self._one(p, t) for p, t in zip(prompts, texts)]
