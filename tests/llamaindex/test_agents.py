"""Agents and structured output on the real embedded model (LlamaIndex): DeALLLM as a FunctionCallingLLM."""

from __future__ import annotations

import asyncio

import pytest
from llama_index.core.agent.workflow import ReActAgent, ToolCallResult
from llama_index.core.prompts import PromptTemplate
from llama_index.core.tools import FunctionTool
from pydantic import BaseModel, Field

from deal_core.rewards import ToolArguments
from llamaindex_deal import DeALLLM
from tests.conftest import load_example

pytestmark = pytest.mark.slow


def test_function_agent_calls_the_tool_natively_and_answers_from_its_result():
    """The final answer had imitated markup ('<user_call_result>{"name": "get_weather", ...}') until the answer turn
    got `ToolResultUse` by default (issue 26)."""
    calls, answer = asyncio.run(load_example("llamaindex_function_agent").run("What is the weather in Paris?"))
    assert [(c.tool_name, c.tool_kwargs) for c in calls] == [("get_weather", {"city": "Paris"})]
    assert "sunny" in answer.lower() and "21" in answer, answer
    assert "<tool" not in answer


class Person(BaseModel):
    """A person mentioned in the text."""

    name: str = Field(description="The person's first name")
    age: int = Field(description="Age in years")
    city: str = Field(description="Where the person lives")


def test_structured_predict_and_structured_llm_are_constrained_to_the_schema():
    llm = DeALLLM(max_tokens=48, rewards=[ToolArguments()])
    prompt = PromptTemplate("Extract the person: {text}")
    assert llm.metadata.is_function_calling_model
    person = llm.structured_predict(Person, prompt, text="Alice is 31 years old and lives in Oslo.")
    assert person == Person(name="Alice", age=31, city="Oslo")
    structured = llm.as_structured_llm(Person)
    response = structured.complete("Extract the person: Bob is 45 years old and lives in Rome.")
    assert response.raw == Person(name="Bob", age=45, city="Rome")


def _react(question: str) -> tuple[list[ToolCallResult], str]:
    def multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        return a * b

    agent = ReActAgent(tools=[FunctionTool.from_defaults(multiply)], llm=DeALLLM(max_tokens=64))

    async def run() -> tuple[list[ToolCallResult], str]:
        handler = agent.run(question, max_iterations=4)
        events = [e async for e in handler.stream_events() if isinstance(e, ToolCallResult)]
        return events, str(await handler)

    return asyncio.run(run())


def test_react_agent_keeps_working():
    """ReAct reads its Thought/Action format from plain text: DeALLLM serves it as a chat model."""
    _, answer = _react("What is 6 times 7?")
    assert "42" in answer, answer


@pytest.mark.xfail(strict=True, reason=(
    "the 135M model answers directly ('To find 6 times 7, ... So, 6 times 7 is 42.') instead of writing "
    "'Thought: ... Action: multiply': no candidate in its top-40 first tokens leads to 'Thought:' (measured with a "
    "Regex reward on the ReAct format, which therefore has nothing to choose from); FunctionAgent's native tool "
    "calls work (test above)"))
def test_react_agent_calls_its_tool():
    calls, _ = _react("What is 6 times 7?")
    assert calls and calls[0].tool_name == "multiply"


def test_stream_structured_predict_yields_the_object():
    """Issue 26: it yielded an empty object (LlamaIndex reads calls from additional_kwargs["tool_calls"])."""
    llm = DeALLLM(max_tokens=48, rewards=[ToolArguments()])
    last = None
    for last in llm.stream_structured_predict(Person, PromptTemplate("Extract the person: {text}"),
                                              text="Alice is 31 years old and lives in Oslo."):
        pass
    assert (last.name, last.age, last.city) == ("Alice", 31, "Oslo"), last


def test_a_plain_answer_that_reaches_the_budget_with_tools_bound_returns_its_text():
    """Issue 36: with tools bound, a plain answer cut by the budget raised ConstraintError; it is the text, with
    finish_reason "length"."""
    def get_weather(city: str) -> str:
        """Get the current weather in a city."""
        return f"Sunny in {city}"

    def multiply(a: float, b: float) -> float:
        """Multiply two numbers."""
        return a * b

    tools = [FunctionTool.from_defaults(fn=f) for f in (get_weather, multiply)]
    response = DeALLLM(max_tokens=6).chat_with_tools(tools, user_msg="Say hello in Spanish.")
    assert response.message.content.strip() and not response.message.additional_kwargs.get("tool_calls")
    assert response.additional_kwargs["finish_reason"] == "length", response.additional_kwargs
