"""BFCL rows and BFCL's AST rule, over the 300 shipped rows (simple_python + multiple) and a few written here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from deal_core.bench.bfcl import (
    JSON_SCHEMA_TYPES,
    BfclRow,
    CallCheck,
    check_calls,
    json_schema,
    load_bfcl,
    standardize,
    tools_of,
)
from deal_core.bench.data import PACKAGED_DATA, DataError
from deal_core.errors import ConfigError
from deal_core.request import Tool, ToolCall


@pytest.fixture(scope="module")
def rows() -> list[BfclRow]:
    return load_bfcl("simple") + load_bfcl("multiple")


def by_id(rows: list[BfclRow], row_id: str) -> BfclRow:
    return next(r for r in rows if r.id == row_id)


def reference(row: BfclRow) -> tuple[str, dict[str, Any]]:
    (call,) = row.reference_calls()
    return call


# ------------------------------------------------------------------------------------------------ the shipped rows


def test_the_shipped_files_load_whole_and_are_listed_in_the_data_readme(rows):
    simple, multiple = load_bfcl("simple"), load_bfcl("multiple")
    assert len(simple) == 200 and len(multiple) == 100
    assert len({r.id for r in rows}) == 300
    assert all(r.id.startswith("simple_python_") and r.split == "simple" for r in simple)
    assert all(r.id.startswith("multiple_") and r.split == "multiple" for r in multiple)
    assert all(len(r.functions) == 1 for r in simple) and all(2 <= len(r.functions) <= 4 for r in multiple)
    assert all(len(r.ground_truth) == 1 for r in rows)
    readme = (PACKAGED_DATA / "README.md").read_text()
    assert "`bfcl_simple_dev.jsonl` | 200 |" in readme and "`bfcl_multiple_dev.jsonl` | 100 |" in readme
    assert [r.id for r in load_bfcl("multiple", limit=3)] == [r.id for r in multiple[:3]]


def test_messages_are_the_first_turn_of_the_question(rows):
    first = rows[0]
    assert first.messages == ({"role": "user", "content": "Find the area of a triangle with a base of 10 units and "
                                                          "height of 5 units."},)
    assert all(r.messages and all(m["role"] in ("system", "user") and m["content"] for m in r.messages) for r in rows)


def _schema_nodes(schema: dict[str, Any]):
    stack = [schema]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.get("properties", {}).values())
        if "items" in node:
            stack.append(node["items"])


def test_every_tool_schema_is_valid_json_schema_with_no_bfcl_type_left(rows):
    standard = {"object", "array", "string", "integer", "number", "boolean", "null"}
    for row in rows:
        for tool in row.tools:
            parameters = tool["function"]["parameters"]
            assert parameters["type"] == "object"
            for node in _schema_nodes(parameters):
                assert node.get("type", "object") in standard, (row.id, node)
                assert "optional" not in node
    jsonschema = pytest.importorskip("jsonschema")
    for row in rows:
        for tool in row.tools:
            jsonschema.Draft202012Validator.check_schema(tool["function"]["parameters"])


def test_the_reference_arguments_fit_the_converted_schemas(rows):
    """A correct answer exists inside the schema, so a constrained decoder can reach it on every row."""
    jsonschema = pytest.importorskip("jsonschema")
    for row in rows:
        for omit in (False, True):
            ((name, arguments),) = row.reference_calls(omit_optional=omit)
            schema = next(t["function"]["parameters"] for t in row.tools if t["function"]["name"] == name)
            errors = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(arguments)]
            assert not errors, (row.id, errors)


def test_tools_of_gives_request_tools_with_the_names_as_written(rows):
    for row in rows:
        tools = tools_of(row)
        assert all(isinstance(t, Tool) for t in tools)
        assert [t.name for t in tools] == [f.name for f in row.functions]
        assert [t.to_template() for t in tools] == list(row.tools)
    assert "math.hypot" in [t.name for t in tools_of(by_id(rows, "simple_python_2"))]


def test_schema_conversion_maps_every_bfcl_type():
    spec = {"type": "dict", "properties": {
        "f": {"type": "float"}, "t": {"type": "tuple", "items": {"type": "integer"}}, "a": {"type": "any"},
        "d": {"type": "array", "items": {"type": "dict", "properties": {"x": {"type": "float"}}, "optional": True}},
        "e": {"type": "string", "enum": ["A", "B"], "default": "A", "optional": True}}, "required": ["f"]}
    assert json_schema(spec) == {"type": "object", "properties": {
        "f": {"type": "number"}, "t": {"type": "array", "items": {"type": "integer"}}, "a": {},
        "d": {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "number"}}}},
        "e": {"type": "string", "enum": ["A", "B"], "default": "A"}}, "required": ["f"]}
    assert set(JSON_SCHEMA_TYPES) == {"string", "integer", "float", "boolean", "array", "tuple", "dict", "any"}
    with pytest.raises(ValueError, match=r"parameters.p: unknown type 'complex'"):
        json_schema({"type": "dict", "properties": {"p": {"type": "complex"}}})


# ------------------------------------------------------------------------------------------------ the oracle and its opposites


def test_the_ground_truths_own_values_pass_every_row(rows):
    for row in rows:
        for omit in (False, True):
            verdict = check_calls(row.reference_calls(omit_optional=omit), row)
            assert verdict == CallCheck(True, True, True, ""), (row.id, omit, verdict.reason)


def test_a_wrong_function_fails_every_row(rows):
    for row in rows:
        name, arguments = reference(row)
        others = [f.name for f in row.functions if f.name != name] or [f"{name}_v2"]
        for other in others:
            verdict = check_calls([(other, arguments)], row)
            assert (verdict.valid_format, verdict.right_function, verdict.args_match) == (True, False, False), row.id
            assert repr(name) in verdict.reason


def _wrong(value: Any, accepted: list[Any]) -> Any:
    """A value of the same type that is none of the accepted ones, or None where there is no such value."""
    if isinstance(value, bool):
        return None if (not value) in accepted else not value
    if isinstance(value, int):
        return max([v for v in accepted if isinstance(v, int)] + [0]) + 7919
    if isinstance(value, float):
        return value + 1000.5
    if isinstance(value, str):
        return "zq not accepted"
    if isinstance(value, list):
        return value + value[:1] if value else ["zq"]
    if isinstance(value, dict):
        return {**value, "zq_unknown_key": 1}
    raise AssertionError(f"unexpected value {value!r}")


def test_a_wrong_value_fails_every_row(rows):
    for row in rows:
        name, arguments = reference(row)
        accepted = row.ground_truth[0].accepted
        wrong = [(p, _wrong(v, accepted[p])) for p, v in arguments.items()]
        wrong = [(p, w) for p, w in wrong if w is not None]
        assert wrong, row.id
        for param, value in wrong:
            verdict = check_calls([(name, {**arguments, param: value})], row)
            assert verdict.right_function and not verdict.args_match, (row.id, param, value)
            assert repr(param) in verdict.reason


def test_a_missing_required_argument_fails_every_row(rows):
    tested = 0
    for row in rows:
        name, arguments = reference(row)
        for param in row.function(name).required:
            verdict = check_calls([(name, {k: v for k, v in arguments.items() if k != param})], row)
            assert verdict.right_function and not verdict.args_match
            assert verdict.reason == f"{name}: missing required argument {param!r}"
            tested += 1
    assert tested > 300


def test_an_unknown_argument_fails_every_row(rows):
    for row in rows:
        name, arguments = reference(row)
        verdict = check_calls([(name, {**arguments, "zq_unknown": 1})], row)
        assert verdict.right_function and not verdict.args_match
        assert verdict.reason == f"{name}: unexpected argument 'zq_unknown'"


def test_two_calls_where_one_is_expected_is_the_wrong_function(rows):
    row = by_id(rows, "multiple_0")
    verdict = check_calls(row.reference_calls() * 2, row)
    assert (verdict.valid_format, verdict.right_function, verdict.args_match) == (True, False, False)
    assert "made 2 call(s)" in verdict.reason


# ------------------------------------------------------------------------------------------------ BFCL's leniencies and strictness


def test_an_int_passes_where_a_float_is_expected_but_not_the_reverse(rows):
    row = by_id(rows, "simple_python_200")  # fuel_efficiency: float, accepted ["", 25.0]; distance: integer
    base = {"distance": 12000, "fuel_type": "gas", "fuel_efficiency": 25.0}
    assert check_calls([("calculate_emissions", {**base, "fuel_efficiency": 25})], row).ok
    assert not check_calls([("calculate_emissions", {**base, "fuel_efficiency": 25.5})], row).args_match
    verdict = check_calls([("calculate_emissions", {**base, "distance": 12000.0})], row)
    assert not verdict.args_match and "expected integer, got float" in verdict.reason
    verdict = check_calls([("calculate_emissions", {**base, "distance": True})], row)
    assert not verdict.args_match and "expected integer, got bool" in verdict.reason
    # `""` is accepted for fuel_efficiency, but the schema requires it: BFCL checks `required` first
    verdict = check_calls([("calculate_emissions", {"distance": 12000, "fuel_type": "gas"})], row)
    assert verdict.reason == "calculate_emissions: missing required argument 'fuel_efficiency'"


def test_ints_inside_a_float_array_fail_as_in_bfcl(rows):
    row = by_id(rows, "simple_python_82")  # numbers: array of float, accepted [[12.0, 15.0, ...]]
    name, arguments = reference(row)
    assert check_calls([(name, arguments)], row).ok
    as_ints = {**arguments, "numbers": [int(x) for x in arguments["numbers"]]}
    verdict = check_calls([(name, as_ints)], row)
    assert not verdict.args_match and "elements that are not float" in verdict.reason


def test_strings_compare_without_case_spaces_and_some_punctuation(rows):
    row = by_id(rows, "simple_python_0")  # unit: accepted ["units", ""]
    call = {"base": 10, "height": 5}
    for unit in ("units", " UNITS ", "Un-i_t.s", "u/n*i^t,s", ""):
        assert check_calls([("calculate_triangle_area", {**call, "unit": unit})], row).ok, unit
    for unit in ("unit", "units!", "cm"):
        assert not check_calls([("calculate_triangle_area", {**call, "unit": unit})], row).args_match, unit
    assert standardize("New York, NY") == "newyorkny" and standardize("it's") == 'it"s'
    row = by_id(rows, "multiple_76")  # ground truth 'Bronze'/'bronze'; the schema's enum says 'Bronze'
    name, arguments = reference(row)
    assert check_calls([(name, {**arguments, "material": "BRONZE"})], row).ok


def test_an_argument_may_be_omitted_only_where_the_ground_truth_accepts_empty(rows):
    omittable = missing = 0
    for row in rows:
        name, arguments = reference(row)
        required = set(row.function(name).required)
        for param, values in row.ground_truth[0].accepted.items():
            if param in required or param not in arguments:
                continue
            verdict = check_calls([(name, {k: v for k, v in arguments.items() if k != param})], row)
            if "" in values:
                assert verdict.ok, (row.id, param)
                omittable += 1
            else:  # optional in the schema, but the question asks for it
                assert verdict.reason == f"{name}: missing argument {param!r} (the ground truth does not let it be " \
                                         "omitted)", (row.id, param)
                missing += 1
    assert omittable > 50 and missing > 0


def test_an_argument_whose_only_accepted_value_is_empty_must_be_left_out(rows):
    """12 such arguments in the shipped rows, all strings or arrays: an empty one counts as left out (BFCL)."""
    found = 0
    for row in rows:
        name, arguments = reference(row)
        function = row.function(name)
        for param, values in row.ground_truth[0].accepted.items():
            if values != [""]:
                continue
            given, empty = {"string": ("Boston", ""), "array": (["x"], [])}[function.properties[param]["type"]]
            assert not check_calls([(name, {**arguments, param: given})], row).args_match, (row.id, param)
            assert check_calls([(name, {**arguments, param: empty})], row).ok, (row.id, param)
            found += 1
    assert found == 12


def test_dict_arguments_compare_key_by_key(rows):
    row = by_id(rows, "simple_python_94")  # update_info: accepted {"name": ["John Doe"], "email": [...]}
    name, arguments = reference(row)
    info = arguments["update_info"]
    assert check_calls([(name, {**arguments, "update_info": {**info, "name": "JOHN DOE"}})], row).ok
    for bad in ({"name": info["name"]}, {**info, "phone": "1"}, {**info, "name": "Jane Doe"}):
        assert not check_calls([(name, {**arguments, "update_info": bad})], row).args_match, bad


def test_a_list_of_dicts_compares_dict_by_dict_in_order(rows):
    row = by_id(rows, "simple_python_96")
    name, arguments = reference(row)
    conditions = arguments["conditions"]
    assert check_calls([(name, {**arguments, "conditions": [{**conditions[0], "field": "AGE"}, conditions[1]]})],
                       row).ok
    for bad in (conditions[::-1], conditions[:1], [*conditions, conditions[0]]):
        assert not check_calls([(name, {**arguments, "conditions": bad})], row).args_match


def test_lists_compare_in_order(rows):
    row = by_id(rows, "simple_python_122")  # table: [[10, 20], [30, 40]]
    name, arguments = reference(row)
    assert check_calls([(name, arguments)], row).ok
    assert not check_calls([(name, {**arguments, "table": arguments["table"][::-1]})], row).args_match


# ------------------------------------------------------------------------------------------------ the format


def test_output_that_is_not_calls_of_json_objects_is_an_invalid_format(rows):
    row = rows[0]
    name = "calculate_triangle_area"
    for calls, reason in (
        (None, "no call could be parsed"), ([], "holds no call"), ("calculate_triangle_area()", "must be a list"),
        ([(name, '{"base": 10}')], "not a JSON object"), ([("", {})], "no function name"),
        ([(name, {"base": float("nan")})], "not a JSON number"), ([(name, {1: 10})], "non-string key"),
        ([(name, {"base": {1, 2}})], "not a JSON value"), ([(name,)], "not a (name, arguments) pair"),
    ):
        verdict = check_calls(calls, row)
        assert verdict == CallCheck(False, False, False, verdict.reason) and reason in verdict.reason, calls
    deep: Any = 1
    for _ in range(5000):
        deep = [deep]
    assert "nested more than" in check_calls([(name, {"base": deep})], row).reason


def test_tool_calls_are_accepted_as_calls(rows):
    row = by_id(rows, "simple_python_2")
    (name, arguments), = row.reference_calls()
    assert check_calls([ToolCall(id="call_0", name=name, arguments=arguments)], row).ok


# ------------------------------------------------------------------------------------------------ files and errors


def _row(**change: Any) -> dict[str, Any]:
    row = {"id": "simple_python_0", "question": [[{"role": "user", "content": "Add 2 and 3."}]],
           "function": [{"name": "math.add", "description": "Add.", "parameters": {
               "type": "dict", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"},
                                              "tags": {"type": "array", "items": {"type": "string"}},
                                              "x": {"type": "any"}},
               "required": ["a", "b"]}}],
           "ground_truth": [{"math.add": {"a": [2], "b": [3], "tags": ["", ["sum"]], "x": ["", "n"]}}]}
    row.update(change)
    return row


def _write(path: Path, *rows: Any) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_a_file_given_or_found_in_deal_data_dir_wins(tmp_path, monkeypatch):
    file = _write(tmp_path / "bfcl_simple_dev.jsonl", _row(), _row(id="simple_python_2"))
    assert [r.id for r in load_bfcl("simple", path=file)] == ["simple_python_0", "simple_python_2"]
    monkeypatch.setenv("DEAL_DATA_DIR", str(tmp_path))
    assert len(load_bfcl("simple")) == 2
    with pytest.raises(DataError, match=r"bfcl_multiple_dev.jsonl not found"):
        load_bfcl("multiple")


def test_written_rows_follow_the_same_rules(tmp_path):
    (row,) = load_bfcl("simple", path=_write(tmp_path / "r.jsonl", _row()))
    assert row.tools[0]["function"]["parameters"]["properties"]["x"] == {}  # `any`: no type constraint
    assert check_calls([("math.add", {"a": 2, "b": 3, "tags": []})], row).ok  # `""` compares as the empty list
    assert check_calls([("math.add", {"a": 2, "b": 3, "tags": ["SUM"]})], row).ok
    assert check_calls([("math.add", {"a": 2, "b": 3, "x": "n"})], row).ok
    assert not check_calls([("math.add", {"a": 2, "b": 3, "x": 7})], row).args_match  # `any` means a string in BFCL
    # A ground truth that is not of the schema's type (BFCL's "variable") compares as it is, not normalised
    (row,) = load_bfcl("simple", path=_write(tmp_path / "v.jsonl", _row(ground_truth=[{"math.add": {
        "a": ["num_a"], "b": [3]}}])))
    assert check_calls([("math.add", {"a": "num_a", "b": 3})], row).ok
    assert not check_calls([("math.add", {"a": "NUM_A", "b": 3})], row).args_match
    # The ground truth's type is that of its first value other than `""`: here a list, so a string is compared as is
    (row,) = load_bfcl("simple", path=_write(tmp_path / "m.jsonl", _row(
        function=[{"name": "f", "parameters": {"type": "dict", "properties": {"s": {"type": "string"}}}}],
        ground_truth=[{"f": {"s": ["", ["x"], "New York"]}}])))
    assert check_calls([("f", {"s": "New York"})], row).ok
    assert not check_calls([("f", {"s": "new york"})], row).args_match


@pytest.mark.parametrize("line, message", [
    ("{not json", r"r.jsonl:2: not a BFCL simple row"),
    (json.dumps(_row(function=[{"name": "add up", "parameters": {"type": "dict"}}])), "not a valid tool name"),
    (json.dumps(_row(function=[{"name": "f", "parameters": {"type": "dict", "properties": {
        "p": {"type": "complex"}}}}])), "function 'f'.p: unknown type 'complex'"),
    (json.dumps(_row(ground_truth=[{"math.sub": {"a": [1]}}])), "ground truth calls 'math.sub', which is not offered"),
    (json.dumps(_row(ground_truth=[{"math.add": {"c": [1]}}])), "gives 'c', which the function does not define"),
    (json.dumps(_row(ground_truth=[{"math.add": {"a": []}}])), "non-empty list of accepted values"),
    (json.dumps({k: v for k, v in _row().items() if k != "question"}), "missing field 'question'"),
    (json.dumps(_row(question=[[]])), "each a non-empty list of messages"),
    ("[1, 2]", "a row is a JSON object"),
    (json.dumps(_row(function=[{"name": "f", "parameters": {"type": "dict", "properties": {"p": {}}}}])),
     "parameter(s) ['p'] have no 'type'"),
    ("[" * 100_000 + "]" * 100_000, "nested too deep"),
])
def test_a_malformed_line_is_a_data_error_naming_file_and_line(tmp_path, line, message):
    file = _write(tmp_path / "r.jsonl", _row(), line)
    with pytest.raises(DataError, match=r"r\.jsonl:2: not a BFCL simple row") as caught:
        load_bfcl("simple", path=file)
    assert message.replace("\\", "") in str(caught.value)


def test_bad_arguments_are_typed_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown BFCL split 'parallel'; the splits are: simple, multiple"):
        load_bfcl("parallel")
    for limit in (0, -1, 2.5, True):
        with pytest.raises(ConfigError, match="limit must be a positive integer or None"):
            load_bfcl("simple", limit=limit)
    with pytest.raises(DataError, match="does not exist"):
        load_bfcl("simple", path=tmp_path / "missing.jsonl")


def test_unconstrained_answers_are_read_leniently_but_never_guessed():
    from deal_core.bench.tools import parse_free_text

    call = '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>'
    assert parse_free_text(call) == [("f", {"a": 1})]
    assert parse_free_text("Sure! " + call + "\n" + call.replace('"a": 1', '"a": 2')) == [("f", {"a": 1}),
                                                                                          ("f", {"a": 2})]
    assert parse_free_text('<tool_call>\n{"name": "f", "arguments": {"a": 1}}') == [("f", {"a": 1})]  # unclosed tag
    assert parse_free_text("The area is 25.") is None
    assert parse_free_text('<tool_call>\n{"name": "f", "arguments": {"a": 1}\n</tool_call>') is None  # broken JSON
    assert parse_free_text('<tool_call>\n{"function": "f"}\n</tool_call>') is None
