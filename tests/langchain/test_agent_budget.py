"""Agents as users write them, on the real embedded model: "auto" decided by ToolNeed, budgets that never yield a
runnable call with cut arguments, structured output with lists of objects at small budgets, the shipped middleware
and guards (sync and async)."""

from __future__ import annotations

import asyncio

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from pydantic import BaseModel

from deal_core.bench.agent import LEAK_PHRASES, TOOLS, calculator, convert_units, get_weather
from deal_core.rewards import Safety, ToolArguments
from langchain_deal import ChatDeAL
from langchain_deal.middleware import GuardModelCalls, RetryOnBudget, StepRewards
from langchain_deal.rewards import RewardGuard

pytestmark = pytest.mark.slow


class Item(BaseModel):
    name: str
    quantity: int


class Order(BaseModel):
    customer: str
    items: list[Item]


def test_a_call_is_complete_or_reported_invalid_never_squeezed():
    """Issue 26: at max_tokens=48 the call came back as convert_units(value=10, from_unit='', to_unit='')."""
    message = ChatDeAL(max_tokens=48, rewards=[ToolArguments()]).bind_tools(
        [convert_units], tool_choice="any").invoke("Convert 10 kilometers to miles.")
    for call in message.tool_calls:
        assert all(v != "" for v in call["args"].values()), message.tool_calls
    assert message.tool_calls or (message.invalid_tool_calls and
                                  message.response_metadata["finish_reason"] == "length")
    assert message.response_metadata["finish_reason"] in ("tool_calls", "length")


@pytest.mark.parametrize("budget", [16, 24, 40])
def test_structured_output_with_a_list_of_objects_is_valid_at_small_budgets(budget):
    order = ChatDeAL(max_tokens=budget).with_structured_output(Order).invoke(
        "Extract the order: Bob wants 2 apples, 3 pears and 1 melon.")
    assert isinstance(order, Order)


def test_auto_answers_small_talk_in_words_without_the_tool_prompt():
    message = ChatDeAL(max_tokens=32).bind_tools(TOOLS).invoke("Tell me a joke about cats.")
    assert not message.tool_calls and message.content.strip()
    assert not any(p.lower() in message.content.lower() for p in LEAK_PHRASES), message.content
    assert message.response_metadata["finish_reason"] in ("stop", "length")


def test_create_agent_with_auto_calls_the_tool_and_answers():
    """Issue 26: create_agent(ChatDeAL(max_tokens=48), tools) crashed on "What is 23 times 17?"; "auto" never
    called. That question ToolNeed still misses (see tests/unit/test_tool_turns.py); this one it decides."""
    agent = create_agent(ChatDeAL(max_tokens=48).with_rewards([ToolArguments()]), tools=[calculator])
    state = agent.invoke({"messages": [{"role": "user", "content": "What is 156 divided by 12?"}]})
    calls = [c for m in state["messages"] if isinstance(m, AIMessage) for c in m.tool_calls]
    assert [c["name"] for c in calls] == ["calculator"], state["messages"]
    answer = state["messages"][-1]
    assert isinstance(answer, AIMessage) and not answer.tool_calls and answer.content.strip()
    assert not any(p.lower() in answer.content.lower() for p in LEAK_PHRASES), answer.content


def test_with_rewards_survives_bind_tools_and_guards_take_agent_state():
    chat = ChatDeAL(max_tokens=24).with_rewards([ToolArguments()], reward_weight=2.0)
    bound = chat.bind_tools([calculator])
    assert bound.bound.rewards and bound.bound.reward_weight == 2.0
    guarded = RewardGuard(create_agent(chat, tools=[calculator]), Safety(), threshold=0.2)
    state = guarded.invoke({"messages": [{"role": "user", "content": "Say hello to my friend Ann."}]})
    assert state["messages"][-1].response_metadata["reward_guard"]["total"] >= 0.2
    agent = create_agent(RewardGuard(chat, Safety(), threshold=0.2), tools=[calculator])
    assert isinstance(agent.invoke({"messages": [{"role": "user", "content": "Hi!"}]})["messages"][-1], AIMessage)


def test_shipped_middleware_runs_sync_and_under_astream_events():
    middleware = [StepRewards([ToolArguments()]), GuardModelCalls(Safety(), threshold=0.2, on_fail="keep"),
                  RetryOnBudget()]
    agent = create_agent(ChatDeAL(max_tokens=32), tools=[calculator], middleware=middleware)
    question = {"messages": [{"role": "user", "content": "Say hello to my friend Ann."}]}
    assert isinstance(agent.invoke(question)["messages"][-1], AIMessage)

    async def events() -> list[str]:
        return [e["event"] async for e in agent.astream_events(question, version="v2")]

    assert "on_chat_model_end" in asyncio.run(events())


@tool
def get_population(city: str) -> str:
    """Get the population of a city."""
    return {"oslo": "709000", "tokyo": "13960000"}.get(city.strip().lower(), f"no data for {city}")


@tool
def convert_currency(amount: float, from_currency: str, to_currency: str) -> str:
    """Convert an amount of money from one currency to another."""
    return f"{amount} {from_currency} in {to_currency}"


def test_a_plain_answer_that_reaches_the_budget_with_tools_bound_returns_its_text():
    """Issue 36: with tools bound, "Say hello in Spanish." raised ConstraintError (the answer reached max_new_tokens
    before its JSON answer was complete) though no JSON was asked for; every chat model returns the text with
    finish_reason "length"."""
    chat = ChatDeAL(max_tokens=6).bind_tools([get_weather, get_population, calculator, convert_currency])
    message = chat.invoke("Say hello in Spanish.")
    assert not message.tool_calls and message.content.strip(), message
    assert message.response_metadata["finish_reason"] == "length"
