"""BFCL's AST checker (Python rules) for one prediction: `check_calls(calls, row)` gives a `CallCheck`."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deal_core.errors import short_repr

if TYPE_CHECKING:
    from deal_core.bench.bfcl.rows import BfclFunction, BfclRow

# BFCL's parameter type names (Python categories) and the Python type a value of each must have.
PYTHON_TYPES: dict[str, type] = {
    "string": str, "integer": int, "float": float, "boolean": bool,
    "array": list, "tuple": list, "dict": dict, "any": str,
}
MAX_VALUE_DEPTH = 64  # predicted argument values nested deeper are not a valid call


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
