"""Berkeley Function Calling Leaderboard rows (`simple_python`, `multiple`) and BFCL's AST rule for one prediction.

`load_bfcl(split)` reads `bfcl_{split}_dev.jsonl` (`--data FILE` wins, then `$DEAL_DATA_DIR`, then the shipped file;
source and licence in `files/README.md`) into typed `BfclRow`s: the first turn of the question, the offered functions
both as BFCL wrote them and as OpenAI-style tools whose parameters are valid JSON Schema, and the ground truth.

`check_calls(calls, row)` scores the calls a model made the way BFCL's AST checker does (Python rules):

- the number of calls and their function names must be the ground truth's (one call for both splits);
- every parameter the schema requires is given, and no parameter outside both the schema and the ground truth;
- a value's type must be the schema's (`integer` -> int, `float` -> float, `string`/`any` -> str, `boolean` -> bool,
  `array`/`tuple` -> list, `dict` -> dict; an int is accepted, as a float, where `float` is expected, but not inside
  arrays), or else the type of the ground truth's accepted values;
- the value must be among the accepted ones: strings compare after removing spaces and `,./-_*^`, lowering case and
  turning `'` into `"`; lists compare element-wise (their string elements normalised the same way, order kept);
  dicts compare key by key against an accepted dict of accepted values (keys whose accepted values hold `""` may
  be left out); a list of dicts compares dict by dict, in order;
- a ground-truth argument whose accepted values hold `""` may be omitted; any other must be given.

`tools_of(row)` gives the row's functions as `deal_core.request.Tool`s.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deal_core.bench.data import DataError, _resolve
from deal_core.errors import ConfigError, short_repr

if TYPE_CHECKING:
    from deal_core.request import Tool

SPLITS: dict[str, str] = {"simple": "bfcl_simple_dev.jsonl", "multiple": "bfcl_multiple_dev.jsonl"}

# BFCL's parameter type names (Python categories) and the Python type a value of each must have.
PYTHON_TYPES: dict[str, type] = {
    "string": str, "integer": int, "float": float, "boolean": bool,
    "array": list, "tuple": list, "dict": dict, "any": str,
}
# The JSON Schema type each BFCL type name becomes; `any` becomes no type constraint.
JSON_SCHEMA_TYPES: dict[str, str | None] = {
    "string": "string", "integer": "integer", "float": "number", "boolean": "boolean",
    "array": "array", "tuple": "array", "dict": "object", "any": None,
}
# Keys of BFCL specs that are not JSON Schema and carry nothing `required` does not already say.
_DROPPED_KEYS = {"optional"}
TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # deal_core.request.Tool's rule
MAX_VALUE_DEPTH = 64  # predicted argument values nested deeper are not a valid call


# ---------------------------------------------------------------------------------------------------------- rows


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
    file = _resolve(path, SPLITS[split])
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
                   tools=tuple(_tool(f) for f in functions), ground_truth=ground_truth)


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


def _tool(function: BfclFunction) -> dict[str, Any]:
    return {"type": "function", "function": {"name": function.name, "description": function.description,
                                             "parameters": json_schema(function.parameters, function.name)}}


def tools_of(row: BfclRow) -> list[Tool]:
    """The row's functions as `deal_core.request.Tool`s (names kept as written, dots included)."""
    from deal_core.request import Tool

    return [Tool(name=t["function"]["name"], description=t["function"]["description"],
                 parameters=t["function"]["parameters"]) for t in row.tools]


# ------------------------------------------------------------------------------------------------------- checking


@dataclass(frozen=True)
class CallCheck:
    """BFCL's AST verdict on one prediction. `valid_format`: it parsed into calls with a name and JSON-object
    arguments; `right_function`: the called names are the ground truth's; `args_match`: the arguments pass BFCL's
    rule. `reason` says what failed first ("" when all pass)."""

    valid_format: bool
    right_function: bool
    args_match: bool
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.valid_format and self.right_function and self.args_match


def check_calls(calls: Sequence[Any] | None, row: BfclRow) -> CallCheck:
    """Score `calls` against `row`. Each call is a `(name, arguments)` pair or an object with `.name` and
    `.arguments` (such as `deal_core.request.ToolCall`); None or an empty list means the output held no call."""
    parsed, problem = _parse(calls)
    if parsed is None:
        return CallCheck(False, False, False, problem)
    expected = [call.name for call in row.ground_truth]
    called = [name for name, _ in parsed]
    if called != expected:
        what = "called" if len(called) == len(expected) else f"made {len(called)} call(s):"
        return CallCheck(True, False, False, f"{what} {called}, expected {expected}")
    for (name, arguments), truth in zip(parsed, row.ground_truth):
        function = row.function(truth.name)
        assert function is not None  # the loader checked every ground-truth name is offered
        problem = _argument_problem(function, arguments, truth.accepted)
        if problem:
            return CallCheck(True, True, False, f"{name}: {problem}")
    return CallCheck(True, True, True)


def _parse(calls: Sequence[Any] | None) -> tuple[list[tuple[str, dict[str, Any]]] | None, str]:
    if calls is None:
        return None, "no call could be parsed from the output"
    if isinstance(calls, (str, bytes, Mapping)) or not isinstance(calls, Sequence):
        return None, f"calls must be a list of (name, arguments), got {type(calls).__name__}"
    if not calls:
        return None, "the output holds no call"
    parsed = []
    for index, call in enumerate(calls):
        if hasattr(call, "name") and hasattr(call, "arguments"):
            name, arguments = call.name, call.arguments
        elif isinstance(call, (tuple, list)) and len(call) == 2:
            name, arguments = call
        else:
            return None, f"call {index} is not a (name, arguments) pair: {short_repr(call)}"
        if not isinstance(name, str) or not name:
            return None, f"call {index} has no function name: {short_repr(name)}"
        if not isinstance(arguments, dict):
            return None, f"call {index} ({name}): arguments are not a JSON object: {short_repr(arguments)}"
        problem = _json_problem(arguments)
        if problem:
            return None, f"call {index} ({name}): {problem}"
        parsed.append((name, arguments))
    return parsed, ""


def _json_problem(value: dict[str, Any]) -> str:
    """Why `value` is not a JSON object (non-string keys, non-JSON or non-finite values, too deep); "" if it is."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_VALUE_DEPTH:
            return f"arguments are nested more than {MAX_VALUE_DEPTH} levels deep"
        if isinstance(item, dict):
            if not all(isinstance(k, str) for k in item):
                return f"an object has a non-string key: {short_repr(item)}"
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, float):
            if not math.isfinite(item):
                return f"{item!r} is not a JSON number"
        elif item is not None and not isinstance(item, (str, int, bool)):
            return f"{short_repr(item)} is not a JSON value"
    return ""


def standardize(text: str) -> str:
    """BFCL's string normalisation: spaces and `,./-_*^` removed, lower case, `'` turned into `"`."""
    return re.sub(r"[ ,./\-_*^]", "", text).lower().replace("'", '"')


def _normal(value: Any) -> Any:
    return standardize(value) if isinstance(value, str) else value


def _argument_problem(function: BfclFunction, arguments: dict[str, Any], accepted: dict[str, list[Any]]) -> str:
    """Why `arguments` fail BFCL's rule for `function` with ground truth `accepted`; "" when they pass."""
    for param in function.required:
        if param not in arguments:
            return f"missing required argument {param!r}"
    for param, value in arguments.items():
        if param not in function.properties or param not in accepted:
            return f"unexpected argument {param!r}"
        problem = _value_problem(function.properties[param], value, accepted[param])
        if problem:
            return f"argument {param!r}: {problem}"
    for param, values in accepted.items():
        if param not in arguments and "" not in values:
            return f"missing argument {param!r} (the ground truth does not let it be omitted)"
    return ""


def _ground_truth_type(values: list[Any]) -> type | None:
    """The type of the first accepted value that is not `""` (BFCL's 'variable' type), None if there is none."""
    return next((type(v) for v in values if v != ""), None)


def _value_problem(spec: dict[str, Any], value: Any, accepted: list[Any]) -> str:
    type_name = spec["type"]
    expected = PYTHON_TYPES[type_name]
    item_type = None
    if type_name in ("array", "tuple") and isinstance(spec.get("items"), dict) and "type" in spec["items"]:
        item_type = PYTHON_TYPES[spec["items"]["type"]]
    if type_name == "float" and type(value) is int:
        value = float(value)

    truth_type = _ground_truth_type(accepted)
    # BFCL calls a value a "variable" when the ground truth's values are not of the schema's type; such a value is
    # compared as it is, without the normalisations below.
    literal = truth_type is not None and truth_type is not expected
    if type(value) is expected:
        if item_type is not None and not _items_typed(value, accepted, item_type):
            return f"{short_repr(value)} has elements that are not {spec['items']['type']}"
    elif truth_type is not None and type(value) is truth_type:
        literal = True
    else:
        return f"expected {type_name}, got {type(value).__name__} {short_repr(value)}"

    if literal:
        matched = value in accepted
    elif expected is dict:
        matched = _dict_matches(value, accepted)
    elif expected is list and item_type is dict:
        matched = _dict_list_matches(value, accepted)
    elif expected is str:
        matched = standardize(value) in [standardize(a) for a in accepted if isinstance(a, str)]
    elif expected is list:
        matched = _list_matches(value, accepted)
    else:
        matched = value in accepted
    return "" if matched else f"{short_repr(value)} is not among the accepted {short_repr(accepted, 120)}"


def _items_typed(value: list[Any], accepted: list[Any], item_type: type) -> bool:
    """BFCL's one-level element check: every element has the items' type (or the type of that accepted list's
    elements), for at least one accepted list; an accepted `""` (omittable) waives the check."""
    for option in accepted:
        if not isinstance(option, list):
            return True
        option_type = _ground_truth_type(option)
        if all(type(v) is item_type or (option_type is not None and type(v) is option_type) for v in value):
            return True
    return False


def _list_matches(value: list[Any], accepted: list[Any]) -> bool:
    """Equal, element by element and in order, to one accepted list (string elements normalised). An accepted
    `""` compares as the empty list, as in BFCL."""
    normal = [_normal(v) for v in value]
    for option in accepted:
        option = [] if option == "" else option
        if isinstance(option, list) and normal == [_normal(v) for v in option]:
            return True
    return False


def _dict_matches(value: dict[str, Any], accepted: list[Any]) -> bool:
    """Matches one accepted dict: each key is one of its keys with a value among that key's accepted values
    (strings normalised), and each of its keys whose accepted values lack `""` is present."""
    for option in accepted:
        if not isinstance(option, dict):
            continue
        if all(key in option and isinstance(option[key], list)
               and _normal(v) in [_normal(a) for a in option[key]] for key, v in value.items()) \
                and all(key in value or (isinstance(vals, list) and "" in vals) for key, vals in option.items()):
            return True
    return False


def _dict_list_matches(value: list[Any], accepted: list[Any]) -> bool:
    """Matches one accepted list of dicts of the same length, dict by dict in order (an accepted `""` compares as
    the empty list, as in BFCL)."""
    for option in accepted:
        option = [] if option == "" else option
        if isinstance(option, list) and len(option) == len(value) and all(
                isinstance(v, dict) and _dict_matches(v, [o]) for v, o in zip(value, option)):
            return True
    return False
