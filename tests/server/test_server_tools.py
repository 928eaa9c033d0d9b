"""Tool calls and JSON-schema answers over real HTTP, with the real `openai` client, `ChatOpenAI` inside
`create_agent` and LlamaIndex's `OpenAILike` against a server started by the test."""

from __future__ import annotations

import json

import jsonschema
import pytest
from pydantic import BaseModel, Field

from deal_core import DeAL
from deal_core.request import Request
from deal_core.serving import ServerLimits, create_app, running_server
from tests.conftest import load_example
from tests.server.test_server import client

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}},
                   "required": ["city"]}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "Get the local time in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}},
                   "required": ["city"]}}}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


class Person(BaseModel):
    name: str = Field(max_length=10)  # a random model never ends a free string: the budget would (finish "length")
    age: int = Field(ge=0, le=150)


@pytest.fixture(scope="module")
def tool_server(tiny_long_lm):
    with running_server(create_app(DeAL(tiny_long_lm), limits=ServerLimits(max_tokens=96))) as url:
        yield url


def test_a_forced_tool_call_comes_back_in_openai_shape(tool_server, tiny_long_lm):
    reply = client(tool_server).chat.completions.create(
        model="", messages=ASK, tools=[WEATHER, TIME], tool_choice={"type": "function", "function": {
            "name": "get_weather"}}, parallel_tool_calls=False, max_tokens=64)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather" and call.id.startswith("call_")
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, WEATHER["function"]["parameters"])
    alone = DeAL(tiny_long_lm).generate(Request.of(ASK, tools=[WEATHER, TIME], tool_choice="get_weather",
                                                   parallel_tool_calls=False, max_new_tokens=64))
    assert [(c.name, c.arguments) for c in alone.tool_calls] == [(call.function.name, arguments)]


def test_streamed_tool_calls_arrive_as_indexed_deltas(tool_server):
    api = client(tool_server)
    kwargs = dict(model="", messages=ASK, tools=[WEATHER, TIME], tool_choice="required", max_tokens=64)
    whole = api.chat.completions.create(**kwargs).choices[0]
    chunks = list(api.chat.completions.create(**kwargs, stream=True))
    deltas = [d for c in chunks if c.choices for d in (c.choices[0].delta.tool_calls or [])]
    assert [d.index for d in deltas] == list(range(len(whole.message.tool_calls)))
    assert [(d.function.name, json.loads(d.function.arguments)) for d in deltas] == [
        (c.function.name, json.loads(c.function.arguments)) for c in whole.message.tool_calls]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == whole.finish_reason


def test_json_schema_answers_parse_with_the_clients_own_parser(tool_server):
    api = client(tool_server)
    schema = Person.model_json_schema()
    reply = api.chat.completions.create(model="", messages=[{"role": "user", "content": "Alice is 31."}],
                                        response_format={"type": "json_schema", "json_schema": {
                                            "name": "person", "schema": schema}}, max_tokens=48)
    jsonschema.validate(json.loads(reply.choices[0].message.content), schema)
    parsed = api.chat.completions.parse(model="", messages=[{"role": "user", "content": "Alice is 31."}],
                                        response_format=Person, max_tokens=48)
    assert isinstance(parsed.choices[0].message.parsed, Person)
    anything = api.chat.completions.create(model="", messages=[{"role": "user", "content": "A JSON object"}],
                                           response_format={"type": "json_object"}, max_tokens=24)
    assert isinstance(json.loads(anything.choices[0].message.content), dict)


# -- the embedded model behind the server, driven by other frameworks' OpenAI clients ------------------------------
@pytest.fixture(scope="module")
def embedded_server(embedded_lm):
    with running_server(create_app(DeAL(embedded_lm), limits=ServerLimits(max_tokens=128))) as url:
        yield url


@pytest.mark.slow
def test_chat_openai_inside_create_agent_completes_a_two_tool_task(embedded_server):
    from langchain.agents import create_agent
    from langchain_openai import ChatOpenAI

    example = load_example("langchain_agent_tools")  # the same tools and middleware, over HTTP this time
    from langchain_deal.middleware import ForceThenAnswer

    model = ChatOpenAI(base_url=f"{embedded_server}/v1", api_key="unused", model="", max_tokens=128,
                       extra_body={"deal": {"rewards": [{"name": "tool_arguments"}]}})
    agent = create_agent(model, tools=[example.get_weather, example.get_time], middleware=[ForceThenAnswer()])
    state = agent.invoke({"messages": [{"role": "user", "content":
                                        "What is the weather in Paris, and what time is it in Tokyo?"}]})
    calls = {(c["name"], c["args"]["city"]) for m in state["messages"] for c in getattr(m, "tool_calls", [])}
    assert calls == {("get_weather", "Paris"), ("get_time", "Tokyo")}
    answer = state["messages"][-1]
    assert not answer.tool_calls and "<tool_call>" not in answer.content and answer.content.strip()


@pytest.mark.slow
def test_llamaindex_openai_like_calls_tools_and_predicts_structure(embedded_server, embedded_lm):
    from llama_index.core.prompts import PromptTemplate
    from llama_index.core.tools import FunctionTool
    from llama_index.llms.openai_like import OpenAILike

    def get_weather(city: str) -> str:
        """Get the current weather in a city."""
        return f"Sunny in {city}"

    llm = OpenAILike(model=embedded_lm.name, api_base=f"{embedded_server}/v1", api_key="unused", is_chat_model=True,
                     is_function_calling_model=True, max_tokens=64, context_window=8192)
    response = llm.chat_with_tools([FunctionTool.from_defaults(get_weather)], user_msg="What is the weather in Paris?",
                                   tool_required=True)
    [selection] = llm.get_tool_calls_from_response(response)
    assert (selection.tool_name, selection.tool_kwargs) == ("get_weather", {"city": "Paris"})

    class City(BaseModel):
        name: str
        country: str

    city = llm.structured_predict(City, PromptTemplate("Which city is the capital of France? {q}"), q="")
    assert isinstance(city, City)


@pytest.mark.slow
def test_a_plain_answer_that_reaches_the_budget_with_tools_bound_is_text_with_finish_length(embedded_server):
    """Issue 36: with tools bound, a plain answer cut by the budget was an error; over HTTP it is the text."""
    reply = client(embedded_server).chat.completions.create(
        model="", messages=[{"role": "user", "content": "Say hello in Spanish."}], tools=[WEATHER, TIME],
        max_tokens=6)
    choice = reply.choices[0]
    assert choice.finish_reason == "length" and choice.message.content.strip() and not choice.message.tool_calls
