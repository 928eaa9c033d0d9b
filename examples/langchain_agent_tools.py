"""A LangChain agent on the embedded 135M model: two tools, calls enforced by the search.

DeAL guarantees each call's format (a bound tool's name, arguments valid for its schema). Two things help a model
this small to *choose* well: the `ToolArguments` reward (string arguments copied from the request) and a middleware
that forces a tool call while some tool is still unused (small models rarely decide to call one themselves).
"""

from langchain.agents import create_agent
from langchain.agents.middleware import wrap_model_call
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool

from deal_core.rewards import ToolArguments
from langchain_deal import ChatDeAL


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"Sunny, 21 degrees in {city}"


@tool
def get_time(city: str) -> str:
    """Get the local time in a city."""
    return f"It is 09:30 in {city}"


@wrap_model_call
def each_tool_once(request, handler):
    """tool_choice="any" while a tool is unused, then "none": the agent gathers, then answers."""
    used = {m.name for m in request.messages if isinstance(m, ToolMessage)}
    pending = [t for t in request.tools if t.name not in used]
    return handler(request.override(tool_choice="any" if pending else "none"))


def build_agent():
    model = ChatDeAL(max_tokens=64, rewards=[ToolArguments()])
    return create_agent(model, tools=[get_weather, get_time], middleware=[each_tool_once])


def main() -> None:
    question = "What is the weather in Paris, and what time is it in Tokyo?"
    state = build_agent().invoke({"messages": [{"role": "user", "content": question}]})
    for message in state["messages"]:
        if isinstance(message, AIMessage) and message.tool_calls:
            for call in message.tool_calls:
                print(f"call   {call['name']}({call['args']})")
        elif isinstance(message, ToolMessage):
            print(f"result {message.content}")
    print(f"answer {state['messages'][-1].content}")


if __name__ == "__main__":
    main()
