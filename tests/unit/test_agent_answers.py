"""Issue 26, agent answers: the answer turn after tool results is steered to state them (`ToolResultUse`, added by
default), a parameter value repeated in one call earns no credit, and a turn whose only output is a budget-cut call
is asked again with a larger budget."""

from __future__ import annotations

import pytest

from deal_core.config import DeALConfig
from deal_core.errors import ConfigError
from deal_core.request import Request, Tool
from deal_core.result import GenerationResult, SearchStats
from deal_core.rewards import Keywords, RewardSum, ToolArguments
from deal_core.rewards.tool_results import ToolResultUse
from deal_core.tool_turns import results_to_answer, retry_for_cut_call, with_result_use

WEATHER = Tool(name="get_weather", description="Get the current weather in a city", parameters={
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
CONVERT = '<tool_call>\n{"name": "convert_units", "arguments": {"value": 3, "from_unit": "%s", "to_unit": "%s"}}'


def _after_result(result: str, question: str = "What is the weather in Madrid?", **output) -> Request:
    call = {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Madrid"}'}}
    return Request.of([{"role": "user", "content": question},
                       {"role": "assistant", "content": None, "tool_calls": [call]},
                       {"role": "tool", "tool_call_id": "c1", "content": result}], **output)


def test_tool_result_use_is_the_share_of_the_results_values_the_answer_states():
    reward = ToolResultUse(results=("capital Oslo, population 5.5 million",))
    prompt = "What is the capital of Norway?"  # "capital" is the request's word: not an item to carry
    texts = ["Norway is a Nordic country.", "The capital of Norway is Oslo.", "Oslo has 5.5 million people.",
             "Oslo, population 5.5 million", ""]
    assert reward.score([prompt] * 5, texts, [True] * 5) == pytest.approx([0, 1 / 4, 3 / 4, 1, 0])


def test_tool_result_use_matches_whole_numbers_and_skips_items_the_request_holds():
    reward = ToolResultUse(results=("13",))
    assert reward.score(["What is 156 divided by 12?"] * 3, ["It is 130.", "It is 13.", "156 / 12 = 13"],
                        [True] * 3) == [0.0, 1.0, 1.0]
    converted = ToolResultUse(results=("10 kilometers is 6.21 miles",))  # only 6.21 is new to the request
    assert converted.score(["Convert 10 kilometers to miles."] * 2, ["10 kilometers is 6 miles", "about 6.21"],
                           [True, True]) == [0.0, 1.0]
    assert ToolResultUse(results=("Madrid",)).score(["Weather in Madrid?"], ["Sure."], [True]) == [1.0]


def test_an_answer_turn_after_tool_results_gets_the_result_reward_by_default():
    answering = _after_result("Rain, 14 degrees")  # no tools bound: the turn answers
    assert results_to_answer(answering) == ("Rain, 14 degrees",)
    base = RewardSum() + Keywords(keywords=["rain"])
    added = with_result_use(base, [answering], DeALConfig().tool_result_weight)
    assert [t.reward for t in added.terms[:1]] == [t.reward for t in base.terms]
    assert added.terms[-1].reward == ToolResultUse(results=("Rain, 14 degrees",))
    assert added.terms[-1].weight == 1.0
    assert with_result_use(base, [answering], 0.0) == base  # tool_result_weight=0 turns it off
    calling = _after_result("Rain, 14 degrees", tools=[WEATHER], tool_choice="required")
    assert results_to_answer(calling) == () and with_result_use(base, [calling], 1.0) == base
    assert results_to_answer(Request.of("What is the weather in Madrid?")) == ()
    with pytest.raises(ConfigError, match="tool_result_weight=0"):
        with_result_use(base, [answering, _after_result("Sunny, 30 degrees")], 1.0)


def test_tool_arguments_gives_a_parameter_value_repeated_in_the_call_no_credit():
    prompt = "How many feet are in 3 meters?"
    texts = [CONVERT % ("meters", "feet"), CONVERT % ("m", "m"), CONVERT % ("meters", "meters")]
    assert ToolArguments().score([prompt] * 3, texts, [True] * 3) == pytest.approx([1.0, 0.5, 0.5])
    cards = '<tool_call>\n{"name": "deal", "arguments": {"player": ["A", "10"], "dealer": ["10", "9"]}}'
    assert ToolArguments().score(["Player has A and 10, dealer has 10 and 9."], [cards], [True]) == [1.0]
    being_written = '<tool_call>\n{"name": "convert_units", "arguments": {"value": 3, "from_unit": "met'
    assert ToolArguments().score([prompt], [being_written], [False]) == [1.0]  # a piece of the request, unfinished


def _result(text: str, calls: int, cut: int, tokens: int) -> GenerationResult:
    return GenerationResult(
        text=text, token_ids=list(range(tokens)), logprob=0.0, rewards={}, reward_total=0.0, finish_reason="length",
        prompt_tokens=5, tool_calls=[{"id": "c1", "name": "get_weather", "arguments": {"city": "Madrid"}}] * calls,
        invalid_tool_calls=[{"name": "get_weather", "args": '{"city": "Ma', "error": "cut"}] * cut,
        stats=SearchStats())


def test_a_turn_whose_only_output_is_a_cut_call_is_asked_again_with_twice_the_budget():
    request = Request.of("What is the weather in Madrid?", tools=[WEATHER], max_new_tokens=40)
    again = retry_for_cut_call(request, _result("", 0, 1, 40), DeALConfig())
    assert again is not None and again.config(DeALConfig()).max_new_tokens == 80
    assert again.messages == request.messages and again.tools == request.tools
    assert retry_for_cut_call(request, _result("", 0, 1, 64), DeALConfig()).settings["max_new_tokens"] == 128
    for kept in (_result("Madrid is", 0, 1, 40), _result("", 1, 1, 40), _result("", 0, 0, 40)):
        assert retry_for_cut_call(request, kept, DeALConfig()) is None


def test_an_answer_that_restates_the_question_earns_half():
    """Issue 36 (agent bench, dev): after two weather calls the answer was the last result and the question copied."""
    reward = ToolResultUse(results=("Clear, 35 degrees", "Drizzle, 12 degrees"))
    question = "Is it warmer in Cairo or in London?"
    echo, answer = reward.score([question] * 2, ["Drizzle, 12 degrees\n\nIs it warmer in Cairo or in London?",
                                                 "Cairo is warmer: clear, 35 degrees; London has drizzle, 12."], [True] * 2)
    assert answer == 1.0 and echo == 0.5 * 3 / 5
