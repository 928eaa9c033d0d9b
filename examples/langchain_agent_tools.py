"""A LangChain agent on the embedded 135M model: two tools, calls enforced by the search.

DeAL guarantees each call's format (a bound tool's name, arguments valid for its schema). With the default
`tool_choice="auto"`, `ToolNeed` decides each turn whether a tool is needed; for a task that must use every tool, the
shipped `ForceThenAnswer` middleware forces a call while a tool is still unused, then an answer in words. The
`ToolArguments` reward keeps string arguments to what the request says.
"""

from langchain.agents import create_agent
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool

from deal_core.rewards import ToolArguments
from langchain_deal import ChatDeAL
from langchain_deal.middleware import ForceThenAnswer


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"Sunny, 21 degrees in {city}"


@tool
def get_time(city: str) -> str:
    """Get the local time in a city."""
    return f"It is 09:30 in {city}"


def build_agent():
    model = ChatDeAL(max_tokens=128).with_rewards([ToolArguments()])
    return create_agent(model, tools=[get_weather, get_time], middleware=[ForceThenAnswer()])


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
