"""Tool turns: the "auto" decision (ToolNeed on the real embedder), cut calls read back as invalid, tool results
rendered without template wording, ToolArguments giving empty, looping and unrequested values no credit."""

from __future__ import annotations

import pytest

from deal_core.prompts import render_messages
from deal_core.request import Request, Tool
from deal_core.rewards import ToolArguments
from deal_core.rewards.tool_need import ToolNeed
from deal_core.constraint import Matcher, tool_grammar
from deal_core.tool_turns import (answer_opening, carried_value, decide_auto, normalised, read_calls, role_values,
                                  with_result_use)

WEATHER = Tool(name="get_weather", description="Get the current weather in a city", parameters={
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
TIME = Tool(name="get_time", description="Get the local time in a city", parameters={
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


def test_tool_need_decides_auto_from_the_request_and_what_was_already_called():
    need = ToolNeed()
    asks = Request.of("What is the weather in Paris?", tools=[WEATHER, TIME])
    assert decide_auto(asks, need).choice == ("required", "get_weather")  # the one tool the request needs
    for chat in ("Tell me a joke about cats.", "Write a sentence using the words: dog, frisbee, park."):
        assert decide_auto(Request.of(chat, tools=[WEATHER, TIME]), need).tool_choice == "none"
    called = Request.of([
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "content": "Sunny, 21 degrees", "tool_call_id": "a"}], tools=[WEATHER])
    assert decide_auto(called, need).tool_choice == "none"  # gathered: answer now
    both = Request.of("What is the weather in Paris, and what time is it in Tokyo?", tools=[WEATHER, TIME])
    assert decide_auto(both, need).choice == ("required", "get_weather")  # both needed: the first asked, first
    forced = Request.of("Tell me a joke.", tools=[WEATHER], tool_choice="required")
    assert decide_auto(forced, need) is forced and decide_auto(asks, None) is asks


def test_tool_need_never_calls_a_runner_up_tool_after_the_best_one():
    """Agent bench (tuning half): "What is 30 celsius in fahrenheit?" has convert_units at 0.38 and get_weather at
    0.26; once convert_units answered, get_weather was forced with a made-up city. One clause: one tool."""
    convert = Tool(name="convert_units", description="Convert a value between units of length, weight or temperature "
                   "(kilometers, miles, kilograms, pounds, meters, feet, celsius, fahrenheit).", parameters={
                       "type": "object", "properties": {"value": {"type": "number"}, "from_unit": {"type": "string"},
                                                        "to_unit": {"type": "string"}}})
    weather = WEATHER.model_copy(update={"description": "Get the current weather in a city."})
    asks = Request.of("What is 30 celsius in fahrenheit?", tools=[convert, weather])
    assert decide_auto(asks, ToolNeed()).choice == ("required", "convert_units")
    answered = Request.of([
        {"role": "user", "content": "What is 30 celsius in fahrenheit?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "a", "type": "function", "function": {
            "name": "convert_units", "arguments": '{"value": 30, "from_unit": "celsius", "to_unit": "fahrenheit"}'}}]},
        {"role": "tool", "content": "30 celsius is 86 fahrenheit", "tool_call_id": "a"}], tools=[convert, weather])
    assert decide_auto(answered, ToolNeed()).tool_choice == "none"


def test_a_call_closed_or_ended_by_the_budget_is_no_call():
    text, calls, cut = read_calls("Sure. " + CALL, complete=True, closed_early=False)
    assert (text, calls, cut) == ("Sure.", [("get_weather", {"city": "Paris"})], [])
    text, calls, cut = read_calls(CALL, complete=True, closed_early=True)
    assert calls == [] and cut[0]["name"] == "get_weather" and cut[0]["args"] == '{"city": "Paris"}'
    text, calls, cut = read_calls(CALL + "\n" + CALL.replace("Paris", "Ro")[:-20], complete=False,
                                  closed_early=False)
    assert calls == [("get_weather", {"city": "Paris"})] and len(cut) == 1 and "inside" in cut[0]["error"]


@pytest.mark.parametrize(("text", "allowed"), [
    ("The weather in Seattle is light rain, 9 degrees.", True),
    ("Use <b>bold</b> or x < y_1.", True),  # ordinary tags and comparisons stay possible
    ("<user_message>\nThe weather in Seattle is light rain.", False),  # imitated markup (agent bench)
    ("<user-message>\nThe weather in Seattle is light rain.", False),
    ('<user>lookup_country({"country": "Egypt"})', False),  # an answer does not open with a tag
    ('<user_call>\n{"name": "convert_units", "arguments": {"value": 30}}', False),
    ('{"name": "convert_units", "arguments": {"value": 30}}', False),
    ('{"name": "lookup_country", "arguments" : {"country": "Brasilia"}}', False),  # any spacing (agent bench)
    ("<tool_call>", False),
])
def test_text_outside_calls_cannot_imitate_the_call_markup(tiny_lm, text, allowed):
    from deal_core.constraint import ConstraintError, Matcher, grammar_for

    matcher = Matcher.build(tiny_lm.grammar_tokenizer(), grammar_for(Request.of("Hi", tools=[WEATHER],
                                                                                tool_choice="none")))
    try:
        for token in tiny_lm.encode_text(text, special_tokens=False):
            matcher.consume(token)
    except ConstraintError:
        assert not allowed
    else:
        assert allowed


def test_tool_results_reach_the_model_without_template_wording(tiny_lm):
    request = Request.of([
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "content": "Sunny, 21 degrees", "tool_call_id": "a"}], tools=[WEATHER], tool_choice="none")
    last = render_messages(tiny_lm, request)[-1]
    expected = 'get_weather({"city": "Paris"}) = Sunny, 21 degrees\n\nWhat is the weather in Paris?'
    assert last.role == "user" and last.content == expected


@pytest.mark.parametrize(("body", "score"), [
    ('{"city": ""}', 0.0),  # a finished empty value: the budget or nothing wrote it
    ('{"city": "', 1.0),  # a value just opened is not judged yet
    ('{"city": "Paris Paris Paris"}', 0.0),  # looping
    ('{"city": "Paris"}', 1.0),
    ('{"days": 5.0000000', 0.0),  # a number padded with decimals (agent bench: 5.00000000000000015555)
    ('{"days": 5.0000000, "city": "Paris"}', 0.5),
    ('{"days": 5.000001, "city": "Paris"}', 1.0),  # six decimals are a number, not padding
    ('{"days": 20.000000E+000', 0.0),  # padded through the exponent (agent bench: 20.000000E+00000000000)
    ('{"days": 2E+5, "city": "Paris"}', 1.0),
])
def test_tool_arguments_gives_empty_and_looping_values_no_credit(body, score):
    text = '<tool_call>\n{"name": "get_weather", "arguments": ' + body
    assert ToolArguments().score(["Weather in Paris Paris?"], [text], [True]) == [score]


def test_tool_arguments_counts_an_unrequested_extra_call_against_the_answer():
    extra = CALL + "\n" + CALL.replace("get_weather", "get_time")
    both = CALL + "\n" + CALL.replace("get_weather", "get_time").replace("Paris", "Tokyo")
    scores = ToolArguments().score(["What is the weather in Paris?", "Weather in Paris and the time in Tokyo?"],
                                   [extra, both], [True, True])
    assert scores == pytest.approx([2 / 3, 1.0])


def test_bench_tools_data_fills_both_splits(tmp_path):
    """Issue 26: `deal bench tools --data FILE` replaced only the simple rows."""
    from deal_core.bench.data import data_dir
    from deal_core.bench.tools import bfcl_rows

    mixed = tmp_path / "mixed.jsonl"
    lines = [(data_dir() / name).read_text().splitlines()[:2] for name in
             ("bfcl_simple_dev.jsonl", "bfcl_multiple_dev.jsonl")]
    mixed.write_text("\n".join(lines[0] + lines[1]) + "\n")
    rows = bfcl_rows(str(mixed), 5)
    assert [r.split for r in rows] == ["simple", "simple", "multiple", "multiple"]
    assert [r.split for r in bfcl_rows(None, 1)] == ["simple", "multiple"]
    dev, test = ({r.id for r in bfcl_rows(None, 1000, half)} for half in ("dev", "test"))
    assert dev and test and not dev & test and dev | test == {r.id for r in bfcl_rows(None, 1000)}
    assert [r.id for r in bfcl_rows(str(mixed), 5, "test")] == [lines[0][1].split('"')[3], lines[1][1].split('"')[3]]


def test_tool_need_calls_the_calculator_for_times():
    """'What is 23 times 17?' scored 0.17 against the calculator's words, under the 0.20 threshold: the embedder read
    the numerals as unknown tokens. Numerals are now embedded as "a number" (the tool words' own wording); on the
    tool-need tuning half the threshold chosen stays 0.20 with BFCL 100%, small talk 0%, CommonGen 2%."""
    calculator = Tool(name="calculator", description="Do arithmetic on two numbers: add, subtract, multiply or "
                      "divide.", parameters={"type": "object", "properties": {"a": {"type": "number"},
                                             "operation": {"type": "string"}, "b": {"type": "number"}}})
    assert decide_auto(Request.of("What is 23 times 17?", tools=[calculator]), ToolNeed()).choice[0] == "required"


POPULATION = Tool(name="get_population", description="Get the population of a city.", parameters={
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
MULTIPLY = Tool(name="multiply", description="Multiply two numbers.", parameters={
    "type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]})
CURRENCY = Tool(name="convert_currency", description="Convert an amount of money from one currency to another.",
                parameters={"type": "object", "properties": {"amount": {"type": "number"},
                            "from_currency": {"type": "string"}, "to_currency": {"type": "string"}}})
FOUR = [WEATHER.model_copy(update={"description": "Get the current weather in a city."}), POPULATION, MULTIPLY,
        CURRENCY]


def _after(question: str, *calls: tuple[str, dict, str]) -> Request:
    """The agent's request after `calls` (name, arguments, result) answered `question`."""
    import json

    messages = [{"role": "user", "content": question}]
    for i, (name, arguments, result) in enumerate(calls):
        messages += [{"role": "assistant", "content": None, "tool_calls": [{"id": f"c{i}", "type": "function",
                      "function": {"name": name, "arguments": json.dumps(arguments)}}]},
                     {"role": "tool", "content": result, "tool_call_id": f"c{i}"}]
    return Request.of(messages, tools=FOUR)


def test_after_a_result_the_next_tool_the_request_needs_is_called_then_the_answer():
    """Issue 36: "What is the population of Oslo multiplied by 3?" called get_population, then answered "709000"."""
    need, question = ToolNeed(), "What is the population of Oslo multiplied by 3?"
    assert decide_auto(_after(question), need).choice == ("required", "get_population")
    first = ("get_population", {"city": "Oslo"}, "709000")
    assert decide_auto(_after(question, first), need).choice == ("required", "multiply")
    assert decide_auto(_after(question, first, ("multiply", {"a": 709000, "b": 3}, "2127000")), need).choice[0] == \
        "none"


def test_a_comparison_calls_the_tool_again_for_the_other_value_by_the_grammar():
    """Issue 36: "Is it warmer in Tokyo or in Oslo?" called the weather tool once and answered with Tokyo's."""
    need, question = ToolNeed(), "Is it warmer in Tokyo or in Oslo?"
    assert decide_auto(_after(question), need).choice == ("required", "get_weather")
    again = decide_auto(_after(question, ("get_weather", {"city": "Tokyo"}, "Cloudy, 18 degrees")), need)
    assert again.choice == ("required", "get_weather")
    [weather] = [t for t in again.tools if t.name == "get_weather"]
    assert weather.parameters["properties"]["city"]["enum"] == ["Oslo"]  # the value not asked for yet, only
    done = _after(question, ("get_weather", {"city": "Tokyo"}, "Cloudy"), ("get_weather", {"city": "oslo"}, "Snow"))
    assert decide_auto(done, need).choice[0] == "none"
    colder = "Is Oslo colder than Tokyo right now?"  # a question word before a value is no value ("Is Oslo")
    both = _after(colder, ("get_weather", {"city": "Oslo"}, "Snow"), ("get_weather", {"city": "Tokyo"}, "Cloudy"))
    assert decide_auto(both, need).choice[0] == "none"
    for one in ("What is the weather in Oslo, and what is the population of Tokyo?", "Convert 100 USD to EUR."):
        request = decide_auto(_after(one), need)
        assert request.choice[0] == "required" and request.tools == tuple(FOUR) or request.tools == FOUR


def test_a_chained_call_takes_the_number_the_request_names_from_the_earlier_result():
    """Issue 36: after get_population returned 709000, "... multiplied by 3" called multiply with the request's 3 and
    a number of its own; the grammar now writes the result where the request names it."""
    question = "What is the population of Oslo multiplied by 3?"
    chained = decide_auto(_after(question, ("get_population", {"city": "Oslo"}, "709000")), ToolNeed())
    [multiply] = [t for t in chained.tools if t.name == "multiply"]
    assert multiply.parameters["properties"]["a"]["enum"] == [709000]
    assert "enum" not in multiply.parameters["properties"]["b"]  # 3: the request's own number, left to the model
    converted = _after("Convert 3 miles to kilometers and multiply that by 10.",
                       ("convert_currency", {"amount": 3, "from_currency": "miles"}, "3 miles is 4.83 kilometers"))
    assert carried_value(converted, MULTIPLY) == ("a", 4.83)  # the number the call did not pass in
    divided = _after("Divide 100 by the population of Oslo.", ("get_population", {"city": "Oslo"}, "709,000"))
    assert carried_value(divided, MULTIPLY) == ("b", 709000)  # the request names Oslo after its 100
    both = _after("What is the weather in Oslo, and what is 6 times 7?",
                  ("get_weather", {"city": "Oslo"}, "Snow, -3 degrees"))
    assert carried_value(both, MULTIPLY) is None  # the request gives both numbers itself
    assert carried_value(_after(question), MULTIPLY) is None  # no result yet


def test_the_carried_number_is_the_only_value_the_grammar_allows(tiny_lm):
    question = "What is the population of Oslo multiplied by 3?"
    chained = decide_auto(_after(question, ("get_population", {"city": "Oslo"}, "709000")), ToolNeed())
    matcher = Matcher.build(tiny_lm.grammar_tokenizer(), tool_grammar(chained.tools, "required", "multiply", False))
    closed = tiny_lm.decode(matcher.closing_path(4096))
    assert '"a": 709000' in closed, closed


@pytest.mark.parametrize("question", ["Say hello in Spanish.", "Tell me a joke.", "Write a haiku about autumn.",
                                      "What color is the sky on a clear day?"])
def test_requests_no_tool_answers_are_not_sent_to_a_tool(question):
    assert decide_auto(_after(question), ToolNeed()).choice[0] == "none"


def test_arguments_are_read_as_the_schema_asks():
    schema = {"properties": {"unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}, "n": {"type": "integer"},
                             "x": {"type": "number"}, "code": {"type": "string", "pattern": "^[A-Z]{3}$"},
                             "city": {"type": "string"}}}
    assert normalised({"unit": "Celsius ", "n": "3", "x": "2.5", "code": "usd", "city": "Oslo"}, schema) == {
        "unit": "celsius", "n": 3, "x": 2.5, "code": "USD", "city": "Oslo"}
    assert normalised({"n": 3.0, "unit": "kelvin", "x": "many"}, schema) == {"n": 3, "unit": "kelvin", "x": "many"}


UNITS = Tool(name="convert_units", description="Convert a value between units of length, weight or temperature "
             "(kilometers, miles, kilograms, pounds, meters, feet, celsius, fahrenheit).", parameters={
                 "type": "object", "properties": {"value": {"type": "number"}, "from_unit": {"type": "string"},
                                                  "to_unit": {"type": "string"}}})


def test_a_tool_that_lacks_its_number_waits_for_the_tool_that_gives_it():
    """Issue 36: "How hot is it in Cairo in fahrenheit?" called the weather tool and answered in degrees; a request
    whose best tool needs a number it does not give first calls the tool that gives it, then the one still named by
    a word no call or result accounts for ("fahrenheit"), with the result carried; a plain request stops."""
    tools, need = [UNITS, FOUR[0]], ToolNeed()
    question = "What is the temperature in Madrid in fahrenheit?"
    assert decide_auto(Request.of(question, tools=tools), need).choice == ("required", "get_weather")
    after = _after(question, ("get_weather", {"city": "Madrid"}, "Sunny, 24 degrees")).model_copy(
        update={"tools": tuple(tools)})
    chained = decide_auto(after, need)
    assert chained.choice == ("required", "convert_units")
    assert carried_value(after, UNITS) == ("value", 24)
    plain = _after("What is the temperature in Madrid?", ("get_weather", {"city": "Madrid"}, "Sunny, 24 degrees"))
    assert decide_auto(plain.model_copy(update={"tools": tuple(tools)}), need).choice[0] == "none"


def test_the_answer_proposed_after_results_states_what_the_request_asked():
    """Issue 36: after both calls of a comparison the answer stated one result, after a chain the intermediate one.
    The answer proposed states every result no later call took a number from, labelled by the request's values."""
    both = _after("Is Oslo colder than Tokyo?", ("get_weather", {"city": "Oslo"}, "Snow, -3 degrees"),
                  ("get_weather", {"city": "Tokyo"}, "Cloudy, 18 degrees")).model_copy(update={"tool_choice": "none"})
    assert answer_opening(both) == "Oslo: Snow, -3 degrees. Tokyo: Cloudy, 18 degrees."
    chain = _after("What is the population of Oslo multiplied by 3?", ("get_population", {"city": "Oslo"}, "709000"),
                   ("multiply", {"a": 709000, "b": 3}, "2127000"))
    assert answer_opening(chain) == "2127000."  # 709000 went into the next call: the product is the answer
    rewards = with_result_use(ToolArguments() * 1.0, [both], 1.0)
    assert rewards.proposals(both.text) == ["Oslo: Snow, -3 degrees. Tokyo: Cloudy, 18 degrees."]
    assert answer_opening(_after("Is Oslo colder than Tokyo?")) == ""


@pytest.mark.parametrize(("question", "roles"), [
    ("Convert 12 miles to kilometers.", {"from_unit": ["miles"], "to_unit": ["kilometers"]}),  # bench: reversed
    ("How many feet is 7 meters?", {"from_unit": ["meters"], "to_unit": ["feet"]}),  # the value after the number
    ("Change the result from pounds into kilograms.", {"from_unit": ["pounds"], "to_unit": ["kilograms"]}),
    ("What is the temperature in Rome in celsius?", {"to_unit": ["celsius"], "from_unit": [  # any other listed
        "fahrenheit", "feet", "kilograms", "kilometers", "meters", "miles", "pounds"]}),
    ("What is 12 times 4?", {}),
])
def test_values_the_request_writes_in_a_direction_fill_those_parameters(question, roles):
    assert role_values(Request.of(question, tools=[UNITS]), UNITS) == roles
    assert role_values(Request.of(question, tools=[MULTIPLY]), MULTIPLY) == {}
