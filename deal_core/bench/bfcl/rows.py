"""BFCL rows: `load_bfcl(split)` reads `bfcl_{split}_dev.jsonl` (`--data FILE` wins, then `$DEAL_DATA_DIR`, then the
shipped file; source and licence in `files/README.md`) into typed `BfclRow`s, checking every field it uses."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deal_core.bench.bfcl.schema import json_schema
from deal_core.bench.data import DataError, data_path
from deal_core.errors import ConfigError, short_repr

if TYPE_CHECKING:
    from deal_core.request import Tool

SPLITS: dict[str, str] = {"simple": "bfcl_simple_dev.jsonl", "multiple": "bfcl_multiple_dev.jsonl"}
TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # deal_core.request.Tool's rule


@dataclass(frozen=True)
class BfclFunction:
    """One offered function as BFCL wrote it (`parameters` keeps BFCL's type names: `dict`, `float`, ...)."""

    name: str
    description: str
    parameters: dict[str, Any]

    @property
    def properties(self) -> dict[str, Any]:
        return self.parameters.get("properties", {})

    @property
    def required(self) -> list[str]:
        return list(self.parameters.get("required", []))


@dataclass(frozen=True)
class ExpectedCall:
    """One ground-truth call: for each argument the accepted values (`""` among them: it may be omitted)."""

    name: str
    accepted: dict[str, list[Any]]


@dataclass(frozen=True)
class BfclRow:
    """A BFCL question: `messages` is the first turn (`{"role", "content"}` dicts), `functions` the offered
    functions as written, `tools` the same as OpenAI-style tools with JSON-Schema parameters, `ground_truth` the
    expected calls (one for `simple` and `multiple`)."""

    id: str
    split: str
    messages: tuple[dict[str, str], ...]
    functions: tuple[BfclFunction, ...]
    tools: tuple[dict[str, Any], ...]
    ground_truth: tuple[ExpectedCall, ...]

    def function(self, name: str) -> BfclFunction | None:
        return next((f for f in self.functions if f.name == name), None)

    def reference_calls(self, omit_optional: bool = False) -> list[tuple[str, dict[str, Any]]]:
        """Calls the ground truth accepts: each argument's first accepted value other than `""` (for a `dict`, or a
        list of them, each key's first accepted value). An argument (or key) is left out when `""` is its only
        accepted value, or, with `omit_optional`, whenever `""` is accepted and the function does not require it."""
        calls = []
        for call in self.ground_truth:
            function = self.function(call.name)
            assert function is not None  # the loader checked every ground-truth name is offered
            required = set(function.required)
            arguments = {}
            for param, values in call.accepted.items():
                given = [v for v in values if v != ""]
                if not given or (omit_optional and "" in values and param not in required):
                    continue
                spec = function.properties[param]
                if spec["type"] == "dict" and isinstance(given[0], dict):
                    arguments[param] = _first_of_each(given[0])
                elif spec["type"] in ("array", "tuple") and spec.get("items", {}).get("type") == "dict":
                    arguments[param] = [_first_of_each(d) if isinstance(d, dict) else d for d in given[0]]
                else:
                    arguments[param] = given[0]
            calls.append((call.name, arguments))
        return calls


def _first_of_each(accepted: dict[str, Any]) -> dict[str, Any]:
    """A dict from a ground-truth dict of accepted values: each key's first value other than `""`."""
    return {key: next(v for v in values if v != "") for key, values in accepted.items()
            if any(v != "" for v in values)}


def load_bfcl(split: str, limit: int | None = None, path: str | os.PathLike | None = None) -> list[BfclRow]:
    """The rows of `split` ("simple" or "multiple"), at most `limit` of them; `path` overrides the file."""
    if split not in SPLITS:
        raise ConfigError(f"unknown BFCL split {short_repr(split)}; the splits are: {', '.join(SPLITS)}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit must be a positive integer or None, got {short_repr(limit)}")
    file = data_path(path, SPLITS[split])
    rows: list[BfclRow] = []
    with open(file, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rows.append(_row(json.loads(line), split))
            except (ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as exc:
                detail = {KeyError: f"missing field {exc}", RecursionError: "nested too deep"}.get(type(exc), str(exc))
                raise DataError(f"{file}:{number}: not a BFCL {split} row: {detail}") from None
            if limit and len(rows) >= limit:
                break
    return rows


def _row(raw: Any, split: str) -> BfclRow:
    if not isinstance(raw, dict):
        raise ValueError(f"a row is a JSON object, got {type(raw).__name__}")
    row_id = raw["id"]
    if not isinstance(row_id, str):
        raise ValueError(f"'id' must be a string, got {short_repr(row_id)}")
    first_turn = raw["question"][0]
    if not isinstance(first_turn, list) or not first_turn:
        raise ValueError("'question' must be a list of turns, each a non-empty list of messages")
    messages = []
    for message in first_turn:
        role, content = message["role"], message["content"]
        if role not in ("system", "user", "assistant") or not isinstance(content, str):
            raise ValueError(f"a question message needs a role system/user/assistant and a string content, got "
                             f"{short_repr(message)}")
        messages.append({"role": role, "content": content})
    functions = tuple(_function(spec) for spec in _list(raw["function"], "'function'"))
    if not functions:
        raise ValueError("'function' offers no function")
    names = [f.name for f in functions]
    if len(set(names)) != len(names):
        raise ValueError(f"'function' offers the same name twice: {names}")
    ground_truth = tuple(_expected(call, functions) for call in _list(raw["ground_truth"], "'ground_truth'"))
    if not ground_truth:
        raise ValueError("'ground_truth' holds no call")
    return BfclRow(id=row_id, split=split, messages=tuple(messages), functions=functions,
                   tools=tuple(tool(f) for f in functions), ground_truth=ground_truth)


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{what} must be a list, got {type(value).__name__}")
    return value


def _function(spec: Any) -> BfclFunction:
    name, parameters = spec["name"], spec["parameters"]
    if not isinstance(name, str) or not TOOL_NAME.match(name):
        raise ValueError(f"function name {short_repr(name)} is not a valid tool name (letters, digits, '_', '.', '-', "
                         "1 to 64 of them)")
    if not isinstance(parameters, dict) or parameters.get("type") != "dict":
        raise ValueError(f"function {name!r}: 'parameters' must be a spec of type 'dict'")
    properties = parameters.get("properties", {})
    if not isinstance(properties, dict):
        raise ValueError(f"function {name!r}: 'properties' must be an object")
    untyped = [p for p, spec in properties.items() if not isinstance(spec, dict) or "type" not in spec]
    if untyped:
        raise ValueError(f"function {name!r}: parameter(s) {untyped} have no 'type'")
    required = parameters.get("required", [])
    if not isinstance(required, list) or not all(isinstance(p, str) for p in required):
        raise ValueError(f"function {name!r}: 'required' must be a list of names")
    missing = [p for p in required if p not in properties]
    if missing:
        raise ValueError(f"function {name!r} requires {missing}, which it does not define")
    json_schema(parameters, where=f"function {name!r}")  # checks every type name
    description = spec.get("description", "")
    if not isinstance(description, str):
        raise ValueError(f"function {name!r}: 'description' must be a string")
    return BfclFunction(name=name, description=description, parameters=parameters)


def _expected(call: Any, functions: tuple[BfclFunction, ...]) -> ExpectedCall:
    if not isinstance(call, dict) or len(call) != 1:
        raise ValueError(f"a ground-truth call is one {{name: {{argument: [accepted values]}}}}, got {short_repr(call)}")
    (name, accepted), = call.items()
    function = next((f for f in functions if f.name == name), None)
    if function is None:
        raise ValueError(f"ground truth calls {name!r}, which is not offered")
    if not isinstance(accepted, dict):
        raise ValueError(f"ground truth of {name!r} must map arguments to accepted values")
    for param, values in accepted.items():
        if param not in function.properties:
            raise ValueError(f"ground truth of {name!r} gives {param!r}, which the function does not define")
        if not isinstance(values, list) or not values:
            raise ValueError(f"ground truth of {name}.{param} must be a non-empty list of accepted values")
        spec = function.properties[param]
        dicts = [v for v in values if isinstance(v, dict)] if spec.get("type") == "dict" else []
        if spec.get("type") in ("array", "tuple") and spec.get("items", {}).get("type") == "dict":
            dicts += [d for v in values if isinstance(v, list) for d in v if isinstance(d, dict)]
        for option in dicts:  # an accepted dict gives the accepted values of each of its keys
            if not all(isinstance(v, list) and v for v in option.values()):
                raise ValueError(f"ground truth of {name}.{param}: an accepted dict must map each key to a non-empty "
                                 f"list of accepted values, got {short_repr(option)}")
    return ExpectedCall(name=name, accepted=accepted)


def tool(function: BfclFunction) -> dict[str, Any]:
    return {"type": "function", "function": {"name": function.name, "description": function.description,
                                             "parameters": json_schema(function.parameters, function.name)}}


def tools_of(row: BfclRow) -> list[Tool]:
    """The row's functions as `deal_core.request.Tool`s (names kept as written, dots included)."""
    from deal_core.request import Tool

    return [Tool(name=t["function"]["name"], description=t["function"]["description"],
                 parameters=t["function"]["parameters"]) for t in row.tools]
