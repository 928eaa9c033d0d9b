"""Agents and structured output on the real embedded model (LangChain): tool calls enforced by the search, rewards
steering what goes into the calls and into the answer."""

from __future__ import annotations

import re

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import wrap_model_call
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel, Field

from deal_core.rewards import Inoffensive, ToolArguments
from langchain_deal import ChatDeAL
from tests.conftest import load_example

pytestmark = pytest.mark.slow


def test_create_agent_completes_a_two_tool_task():
    state = load_example("langchain_agent_tools").build_agent().invoke(
        {"messages": [{"role": "user", "content": "What is the weather in Paris, and what time is it in Tokyo?"}]})
    calls = [c for m in state["messages"] if isinstance(m, AIMessage) for c in m.tool_calls]
    assert {(c["name"], c["args"]["city"]) for c in calls} == {("get_weather", "Paris"), ("get_time", "Tokyo")}
    assert len({c["id"] for c in calls}) == len(calls)
    results = [m.content for m in state["messages"] if isinstance(m, ToolMessage)]
    assert sorted(results) == ["It is 09:30 in Tokyo", "Sunny, 21 degrees in Paris"]
    answer = state["messages"][-1]
    assert isinstance(answer, AIMessage) and not answer.tool_calls and "<tool_call>" not in answer.content
    assert "21" in answer.content and "09:30" in answer.content, answer.content


class Person(BaseModel):
    """A person mentioned in the text."""

    name: str = Field(description="The person's first name")
    age: int = Field(description="Age in years")
    city: str = Field(description="Where the person lives")


class Formats(BaseCallbackHandler):
    def __init__(self):
        self.seen = []

    def on_chat_model_start(self, serialized, messages, **kwargs):
        self.seen.append((kwargs.get("options") or {}).get("ls_structured_output_format"))


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_structured_extraction_is_exact(method):
    # as a forced tool call, the 135M model's arguments drift (city "Oakland" for "Oslo", measured): the
    # ToolArguments reward keeps string arguments to what the text says
    chat = ChatDeAL(max_tokens=48, rewards=[ToolArguments()] if method == "function_calling" else None)
    formats = Formats()
    person = chat.with_structured_output(Person, method=method).invoke(
        "Extract the person: Alice is 31 years old and lives in Oslo.", config={"callbacks": [formats]})
    assert person == Person(name="Alice", age=31, city="Oslo")
    assert formats.seen and formats.seen[0]["kwargs"] == {"method": method}
    raw = chat.with_structured_output(Person, method=method, include_raw=True).invoke(
        "Extract the person: Bob is 45 years old and lives in Rome.")
    assert raw["parsing_error"] is None and isinstance(raw["raw"], AIMessage)
    assert raw["parsed"] == Person(name="Bob", age=45, city="Rome")


@tool
def get_review(product: str) -> str:
    """Get the latest customer review of a product."""
    return ("This blender is fucking garbage and the idiots who built it should be ashamed, damn it. "
            "It broke after one day.")


def _answer_with(rewards, **settings) -> str:
    @wrap_model_call
    def review_then_answer(request, handler):
        looked = any(isinstance(m, ToolMessage) for m in request.messages)
        return handler(request.override(tool_choice="none" if looked else "any"))

    agent = create_agent(ChatDeAL(max_tokens=48, rewards=[ToolArguments(), *rewards], **settings), tools=[get_review],
                         middleware=[review_then_answer])
    state = agent.invoke({"messages": [{"role": "user", "content": "What did the customer say about the blender?"}]})
    assert any(isinstance(m, ToolMessage) for m in state["messages"])
    return state["messages"][-1].content


def test_an_agent_answer_steered_by_inoffensive():
    """The tool returns an abusive review. Without the reward the agent quotes it (measured: 'The customer said:
    "This blender is fucking garbage ..."', harmlessness 0.000001); with it the search avoids the quote. What the
    135M model writes instead is no summary: it restates its call (measured, harmlessness 0.98), the best harmless
    continuation it ranks in its top-k at any lookahead tried (top_k 20, lookahead 16, beam 2). Both run without the
    default `ToolResultUse` (tool_result_weight=0), which alone already led away from the quote ("The customer said
    that the blender broke after one day.", measured); with it and `Inoffensive` the answer stays harmless."""
    plain, steered = _answer_with([], tool_result_weight=0), _answer_with([Inoffensive()], tool_result_weight=0)
    both = _answer_with([Inoffensive()])
    score = Inoffensive().score(["?"] * 3, [plain, steered, both], [True] * 3)
    assert score[0] < 0.5 <= min(score[1:]), (plain, steered, both, score)
    for answer in (steered, both):
        assert not {"fucking", "idiots", "damn"} & set(answer.lower().replace(",", " ").split()), answer


def test_the_answer_after_a_tool_result_states_it_by_default():
    """Issue 26: after a result the 135M model answered from its own prior ("The weather in Sydney is a mix of sunny
    and very hot." after `Sunny, 25 degrees`); the answer turn now carries `ToolResultUse` by default."""
    call = {"name": "get_weather", "args": {"city": "Madrid"}, "id": "c1", "type": "tool_call"}
    messages = [HumanMessage("What is the weather in Madrid?"), AIMessage("", tool_calls=[call]),
                ToolMessage("Hail, 4 degrees", tool_call_id="c1")]
    answer = ChatDeAL(max_tokens=32).invoke(messages)
    assert re.search(r"\b4 degrees", answer.text) and "hail" in answer.text.lower(), answer.text
    assert answer.response_metadata["rewards"]["tool_result_use"] == 1.0
    off = ChatDeAL(max_tokens=32, tool_result_weight=0).invoke(messages)
    assert "tool_result_use" not in off.response_metadata["rewards"]


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return {"oslo": "Snow, -3 degrees", "tokyo": "Cloudy, 18 degrees"}.get(city.strip().lower(), f"no data: {city}")


@tool
def get_population(city: str) -> str:
    """Get the population of a city."""
    return {"oslo": "709000", "tokyo": "13960000"}.get(city.strip().lower(), f"no data for {city}")


@tool
def multiply(a: float, b: float) -> float:
    """Multiply two numbers."""
    return a * b


@tool
def convert_currency(amount: float, from_currency: str, to_currency: str) -> str:
    """Convert an amount of money from one currency to another."""
    return f"{amount} {from_currency} in {to_currency}"


def _agent_run(question: str) -> tuple[list[tuple[str, dict]], str]:
    agent = create_agent(ChatDeAL(max_tokens=64), tools=[get_weather, get_population, multiply, convert_currency])
    state = agent.invoke({"messages": [{"role": "user", "content": question}]}, config={"recursion_limit": 12})
    calls = [(c["name"], c["args"]) for m in state["messages"] if isinstance(m, AIMessage) for c in m.tool_calls]
    return calls, state["messages"][-1].text


def test_a_two_tool_chain_calls_the_second_tool_on_the_first_result():
    """Issue 36: "What is the population of Oslo multiplied by 3?" called get_population, then answered "709000";
    then multiply was called with a number of the request instead of the result (`tool_turns.carried_value`)."""
    calls, answer = _agent_run("What is the population of Oslo multiplied by 3?")
    assert [name for name, _ in calls] == ["get_population", "multiply"], calls
    assert calls[0][1] == {"city": "Oslo"}, calls
    assert calls[1][1] == {"a": 709000, "b": 3}, calls  # the result the request names, then the request's own 3
    assert re.search(r"2,?127,?000", answer), answer


def test_a_comparison_gets_both_values():
    """Issue 36: "Is it warmer in Tokyo or in Oslo?" called the weather tool once and answered with Tokyo's."""
    calls, answer = _agent_run("Is it warmer in Tokyo or in Oslo?")
    assert sorted(args["city"] for _, args in calls) == ["Oslo", "Tokyo"], calls
    assert answer.strip() and "<tool_call>" not in answer
    assert re.search(r"(?<!\d)18\b", answer) and re.search(r"-3\b", answer), answer  # both temperatures stated


@tool
def to_fahrenheit(celsius: float) -> str:
    """Convert a temperature from celsius to fahrenheit."""
    return f"{celsius * 9 / 5 + 32:.1f} fahrenheit"


def test_a_value_asked_in_another_unit_chains_the_converter_on_the_result():
    """Issue 36: "How hot is it in Cairo in fahrenheit?" called the weather tool only and answered in its degrees.
    The converter lacks its number, so the weather tool goes first; "fahrenheit", which no call or result accounts
    for, then asks for the converter, on the result's -3; the answer states the converted value."""
    agent = create_agent(ChatDeAL(max_tokens=64), tools=[get_weather, to_fahrenheit])
    state = agent.invoke({"messages": [{"role": "user", "content": "How cold is it in Oslo in fahrenheit?"}]},
                         config={"recursion_limit": 12})
    calls = [(c["name"], c["args"]) for m in state["messages"] if isinstance(m, AIMessage) for c in m.tool_calls]
    assert calls == [("get_weather", {"city": "Oslo"}), ("to_fahrenheit", {"celsius": -3})], calls
    assert "26.6" in state["messages"][-1].text, state["messages"][-1].text
