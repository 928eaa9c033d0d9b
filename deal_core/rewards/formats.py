"""Format constraints that judge prefixes fairly: a prefix that can still become valid beats one that cannot."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import regex
from pydantic import Field, PrivateAttr, field_validator, model_validator
from pydantic_core import from_json

from deal_core.errors import RewardError
from deal_core.rewards.base import Reward
from deal_core.rewards.budget import BudgetExceeded, deadline, time_left
from deal_core.rewards.schema_guard import safe_validators

# Patterns and schemas come from callers and are scored while the model lock is held: one scoring call of a Regex
# or JsonSchema gets this many seconds, then fails with RewardError (never stalling the other callers for longer).
TIME_BUDGET_S = 0.5


class Regex(Reward):
    """`mode="full"`: the whole response must match `pattern`; a partial response scores 1 while it can still be
    completed into a match (partial matching from the `regex` package), 0 once it cannot.
    `mode="search"`: the pattern must occur somewhere; partial text without it scores 0.5 (it may still come).
    Range [0, 1]. A scoring call gets `TIME_BUDGET_S` seconds of matching (the `regex` module's `timeout`): a
    pattern that backtracks catastrophically fails the call with `RewardError` instead of hanging it.
    """

    kind: ClassVar[str] = "regex"
    bounded_cost: ClassVar[bool] = False  # the pattern sets the cost
    positional: ClassVar[str | None] = "pattern"
    pattern: str = Field(max_length=2_000)
    mode: Literal["full", "search"] = "full"
    strip: bool = True
    _compiled: Any = PrivateAttr(None)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            regex.compile(value)
        except regex.error as exc:
            raise ValueError(f"pattern {value!r} is not a valid regular expression: {exc}") from None
        return value

    def model_post_init(self, context: Any) -> None:
        self._compiled = regex.compile(self.pattern)

    def _one(self, text: str, final: bool) -> float:
        if self.strip:
            text = text.strip() if final else text.lstrip()
        timeout = time_left()  # concurrent: the match lets go of the GIL, so the server's event loop keeps answering
        if self.mode == "search":
            found = self._compiled.search(text, timeout=timeout, concurrent=True)
            return 1.0 if found else (0.0 if final else 0.5)
        return 1.0 if self._compiled.fullmatch(text, partial=not final, timeout=timeout, concurrent=True) else 0.0

    def _score(self, prompts: Sequence[str], texts: Sequence[str], is_final: Sequence[bool]) -> list[float]:
        try:
            with deadline(TIME_BUDGET_S):
                return [self._one(t, f) for t, f in zip(texts, is_final)]
        except (TimeoutError, BudgetExceeded):
            raise RewardError(self.name, f"pattern {self.pattern[:60]!r} took over {TIME_BUDGET_S}s on "
                                         f"{len(texts)} texts (catastrophic backtracking); simplify it") from None


def _strip_fence(text: str) -> str:
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0] if "```" in text else text
    return text.strip()


class JsonSchema(Reward):
    """JSON output that follows `schema` (JSON Schema, checked with `jsonschema`).

    Final text: 1.0 valid and conforming, 0.5 valid JSON that breaks the schema, 0.0 not JSON.
    Partial text is parsed incrementally (pydantic-core's partial JSON parser): 1.0 while it is a viable prefix
    whose partial value breaks no schema rule except missing required fields, 0.5 viable but already off-schema,
    0.0 when no continuation can make it JSON (e.g. `{"a": }`). A code fence around the JSON is allowed.
    Schemas are untrusted input (see `schema_guard`): no `$ref` outside the schema, bounded size and depth, and a
    scoring call gets `TIME_BUDGET_S` seconds, then fails with `RewardError`. JSON nested too deep to parse is 0.0.
    """

    kind: ClassVar[str] = "json_schema"
    bounded_cost: ClassVar[bool] = False  # the schema (patterns, recursion) sets the cost
    positional: ClassVar[str | None] = "json_schema"
    json_schema: dict[str, Any]
    _validator: Any = PrivateAttr(None)
    _partial_validator: Any = PrivateAttr(None)

    @model_validator(mode="after")
    def _valid_schema(self) -> JsonSchema:
        self._validator, self._partial_validator = safe_validators(self.json_schema, _without_required)
        return self

    def _one(self, text: str, final: bool) -> float:
        body = _strip_fence(text)
        try:
            value = json.loads(body)
        except RecursionError:
            return 0.0
        except json.JSONDecodeError as exc:
            if final or "Extra data" in exc.msg:
                return 0.0
            if not body:
                return 1.0
            try:
                value = from_json(body, allow_partial="trailing-strings")
            except ValueError:
                return 0.0
            return 1.0 if self._partial_validator.is_valid(value) else 0.5
        try:
            return 1.0 if self._validator.is_valid(value) else 0.5
        except RecursionError:
            return 0.0

    def _score(self, prompts: Sequence[str], texts: Sequence[str], is_final: Sequence[bool]) -> list[float]:
        try:
            with deadline(TIME_BUDGET_S):
                return [self._one(t, f) for t, f in zip(texts, is_final)]
        except BudgetExceeded:
            raise RewardError(self.name, f"checking {len(texts)} texts against the schema took over "
                                         f"{TIME_BUDGET_S}s (recursive allOf/anyOf/oneOf?); simplify it") from None


def _without_required(schema: Any) -> Any:
    """The schema with every `required` and `minItems` dropped: what a prefix of a valid value must still satisfy."""
    if isinstance(schema, dict):
        return {k: _without_required(v) for k, v in schema.items() if k not in ("required", "minItems", "minLength")}
    if isinstance(schema, list):
        return [_without_required(v) for v in schema]
    return schema
