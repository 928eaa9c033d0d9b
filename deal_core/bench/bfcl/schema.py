"""BFCL's parameter specs as JSON Schema (`json_schema`); rows.py turns a row's functions into tools with it."""

from __future__ import annotations

from typing import Any

from deal_core.errors import short_repr

# The JSON Schema type each BFCL type name becomes; `any` becomes no type constraint.
JSON_SCHEMA_TYPES: dict[str, str | None] = {
    "string": "string", "integer": "integer", "float": "number", "boolean": "boolean",
    "array": "array", "tuple": "array", "dict": "object", "any": None,
}
# Keys of BFCL specs that are not JSON Schema and carry nothing `required` does not already say.
_DROPPED_KEYS = {"optional"}


def json_schema(spec: dict[str, Any], where: str = "parameters") -> dict[str, Any]:
    """A BFCL parameter spec as JSON Schema: `dict` -> `object`, `float` -> `number`, `tuple` -> `array`, `any` -> no
    type constraint, BFCL's `optional` flag dropped (`required` says it), nested `properties`/`items` converted too.
    An unknown type name is a ValueError naming where it is."""
    out: dict[str, Any] = {}
    for key, value in spec.items():
        if key in _DROPPED_KEYS:
            continue
        if key == "type":
            if not isinstance(value, str) or value not in JSON_SCHEMA_TYPES:
                raise ValueError(f"{where}: unknown type {short_repr(value)}; BFCL's types are "
                                 f"{', '.join(JSON_SCHEMA_TYPES)}")
            if JSON_SCHEMA_TYPES[value] is not None:
                out["type"] = JSON_SCHEMA_TYPES[value]
        elif key == "properties":
            if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
                raise ValueError(f"{where}: 'properties' must map names to specs")
            out[key] = {name: json_schema(sub, f"{where}.{name}") for name, sub in value.items()}
        elif key == "items":
            if not isinstance(value, dict):
                raise ValueError(f"{where}: 'items' must be a spec")
            out[key] = json_schema(value, f"{where}[]")
        else:
            out[key] = value
    return out
