"""JSON Schemas are untrusted input (a request may carry one): checked before use, and never a way out.

- No retrieval, ever: `$ref` may only point inside the schema (`#...`); anything else is refused when the reward
  is built, and the validators use a registry whose `retrieve` refuses too.
- Size: at most `MAX_NODES` objects/arrays counted with every `$ref` expanded (so `allOf`/`anyOf`/`oneOf` fan-out
  through references counts in full), nested at most `MAX_DEPTH` deep (each `$ref` hop counts as a level).
  Checked without recursion, so a schema nested 5,000 deep is a clear error, not a `RecursionError`.
- Time: every keyword check looks at the scoring call's deadline (`budget.deadline`), which bounds what static
  limits cannot see (recursive schemas whose cost grows with the data); regex keywords are matched with a timeout
  inside that deadline (`schema_patterns`), so a backtracking `pattern` cannot hold a check for long.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from deal_core.rewards.budget import time_left

MAX_DEPTH = 32
MAX_NODES = 2_000
REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")
DATA_KEYWORDS = ("enum", "const", "default", "examples")  # values are data: a "$ref" key inside is not a reference


def _refuse(uri: str) -> Any:
    raise LookupError(f"retrieving {uri!r} is not allowed: $ref may only point inside the schema")


def _guarded(check: Any) -> Any:
    def guarded(validator: Any, value: Any, instance: Any, schema: Any) -> Any:
        time_left()  # raises BudgetExceeded past the deadline
        return check(validator, value, instance, schema)

    return guarded


def safe_validators(schema: dict[str, Any], partial_of: Callable[[Any], Any]) -> tuple[Any, Any]:
    """Validators for `schema` and for `partial_of(schema)` (its prefix-tolerant form), after checking both.

    Raises ValueError (which says the limit) for a schema that is too big, too deep, points outside itself or is
    not valid JSON Schema."""
    import jsonschema
    from referencing import Registry, Specification
    from referencing.jsonschema import specification_with

    from deal_core.rewards.schema_patterns import KEYWORDS as REGEX_KEYWORDS  # needs jsonschema (rewards extra)
    from deal_core.rewards.schema_patterns import check_patterns

    check_schema_shape(schema)
    check_patterns(schema)
    cls = jsonschema.validators.validator_for(schema)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"json_schema is not a valid JSON Schema: {exc.message}") from None
    # Every keyword checks the deadline. `$schema` goes (the class is chosen): it would make jsonschema switch to
    # an unguarded class when a `$ref` leads back to the root.
    # Regex keywords match with `regex` and a timeout (schema_patterns), never with `re`, which cannot be stopped.
    keywords = {k: REGEX_KEYWORDS.get(k, v) for k, v in cls.VALIDATORS.items()}
    guarded = jsonschema.validators.extend(cls, {k: _guarded(v) for k, v in keywords.items()})
    specification = specification_with(cls.ID_OF(cls.META_SCHEMA) or "", default=Specification.OPAQUE)
    registry = Registry(retrieve=_refuse)
    out = []
    for root in (schema, partial_of(schema)):
        root = {k: v for k, v in root.items() if k != "$schema"}
        resolver = registry.resolver_with_root(specification.create_resource(root))
        _check_expanded(root, resolver, specification)
        out.append(guarded(root, registry=registry))
    return out[0], out[1]


def check_schema_shape(schema: Any) -> None:
    """Depth, size, `$ref` targets and `$schema` placement, on the schema as written (no recursion)."""
    stack, nodes = [(schema, 1, False, True)], 0
    while stack:
        node, depth, data, root = stack.pop()
        if not isinstance(node, (dict, list)):
            continue
        nodes += 1
        if depth > MAX_DEPTH:
            raise ValueError(f"json_schema is nested more than {MAX_DEPTH} levels deep (the limit); flatten it")
        if nodes > MAX_NODES:
            raise ValueError(f"json_schema has more than {MAX_NODES} objects and arrays (the limit); shrink it")
        if isinstance(node, list):
            stack.extend((v, depth + 1, data, False) for v in node)
            continue
        for key, value in node.items():
            if not data and key in REF_KEYWORDS and isinstance(value, str) and not value.startswith("#"):
                raise ValueError(f"json_schema {key} {value[:80]!r} points outside the schema; only references "
                                 "inside it ('#/$defs/...') are allowed, nothing is ever fetched")
            if not data and key == "$schema" and not root:
                raise ValueError("json_schema: $schema is allowed only at the top level")
            stack.append((value, depth + 1, data or key in DATA_KEYWORDS, False))


def _check_expanded(schema: Any, resolver: Any, specification: Any) -> None:
    """Size and depth with every `$ref` followed (a reference back into its own chain is counted once)."""
    from referencing.exceptions import Unresolvable

    stack, nodes = [(schema, resolver, 1, False, ())], 0
    while stack:
        node, resolver, depth, data, chain = stack.pop()
        if not isinstance(node, (dict, list)):
            continue
        nodes += 1
        if nodes > MAX_NODES:
            raise ValueError(f"json_schema expands (following $ref) to more than {MAX_NODES} objects and arrays "
                             "(the limit): allOf/anyOf/oneOf over references multiply; simplify it")
        if depth > MAX_DEPTH:
            raise ValueError(f"json_schema nests more than {MAX_DEPTH} levels deep following $ref (the limit)")
        if isinstance(node, list):
            stack.extend((v, resolver, depth + 1, data, chain) for v in node)
            continue
        if not data and isinstance(specification.id_of(node), str):
            resolver = resolver.in_subresource(specification.create_resource(node))
        for key, value in node.items():
            if not data and key in REF_KEYWORDS and isinstance(value, str):
                try:
                    resolved = resolver.lookup(value)
                except Unresolvable:
                    raise ValueError(f"json_schema {key} {value[:80]!r} does not resolve inside the schema") from None
                if id(resolved.contents) not in chain:
                    stack.append((resolved.contents, resolved.resolver, depth + 1, False,
                                  (*chain, id(resolved.contents))))
            else:
                stack.append((value, resolver, depth + 1, data or key in DATA_KEYWORDS, chain))
