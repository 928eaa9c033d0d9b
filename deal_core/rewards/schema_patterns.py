"""JSON Schema's regex keywords matched by an interruptible engine.

`jsonschema` matches `pattern`, `patternProperties` (and the `additionalProperties` check that reads them) with
Python's `re`, which cannot be stopped mid-match: `{"pattern": "^(a+)+$"}` against 30 a's and a `!` backtracks for
minutes. These replacements match with the `regex` package and its `timeout`, set to what is left of the scoring
call's deadline (`budget.time_left`), so a hostile pattern ends the call with `BudgetExceeded` in time.
`unevaluatedProperties` next to `patternProperties` would match the patterns inside `jsonschema` again with `re`:
such schemas are refused when the reward is built (`check_patterns`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import regex
from jsonschema.exceptions import ValidationError

from deal_core.rewards.budget import BudgetExceeded, time_left

MAX_PATTERN_CHARS = 2_000


def _search(pattern: str, text: str) -> bool:
    try:
        return regex.search(pattern, text, timeout=time_left(), concurrent=True) is not None
    except TimeoutError:
        raise BudgetExceeded from None


def pattern(validator: Any, patrn: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _search(patrn, instance):
        yield ValidationError(f"{instance!r} does not match {patrn!r}")


def pattern_properties(validator: Any, patterns: dict[str, Any], instance: Any, schema: Any) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for patrn, subschema in patterns.items():
        for key, value in instance.items():
            if _search(patrn, key):
                yield from validator.descend(value, subschema, path=key, schema_path=patrn)


def additional_properties(validator: Any, extra: Any, instance: Any, schema: Any) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    known, patterns = schema.get("properties", {}), list(schema.get("patternProperties", {}))
    extras = [k for k in instance if k not in known and not any(_search(p, k) for p in patterns)]
    if validator.is_type(extra, "object"):
        for key in extras:
            yield from validator.descend(instance[key], extra, path=key)
    elif not extra and extras:
        yield ValidationError(f"additional properties are not allowed ({', '.join(map(repr, sorted(extras)))})")


KEYWORDS = {"pattern": pattern, "patternProperties": pattern_properties, "additionalProperties": additional_properties}


def check_patterns(schema: Any) -> None:
    """Every `pattern` / `patternProperties` key compiles with `regex` and is at most `MAX_PATTERN_CHARS` long;
    no `unevaluatedProperties` in a schema that uses `patternProperties`. Raises ValueError saying what to change."""
    stack, patterns, unevaluated = [schema], [], False
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        if not isinstance(node, dict):
            continue
        if isinstance(node.get("pattern"), str):
            patterns.append(node["pattern"])
        if isinstance(node.get("patternProperties"), dict):
            patterns.extend(node["patternProperties"])
        unevaluated = unevaluated or "unevaluatedProperties" in node
        stack.extend(v for k, v in node.items() if k not in ("enum", "const", "default", "examples"))
    for patrn in patterns:
        if len(patrn) > MAX_PATTERN_CHARS:
            raise ValueError(f"json_schema pattern {patrn[:40]!r}… is over {MAX_PATTERN_CHARS} characters; shorten it")
        try:
            regex.compile(patrn)
        except regex.error as exc:
            raise ValueError(f"json_schema pattern {patrn[:80]!r} is not a valid regular expression: {exc}") from None
    if unevaluated and any(isinstance(n, dict) and "patternProperties" in n for n in _nodes(schema)):
        raise ValueError("json_schema combines unevaluatedProperties with patternProperties, whose matching cannot be "
                         "time-limited there; use additionalProperties instead")


def _nodes(schema: Any) -> Iterator[Any]:
    stack = [schema]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
