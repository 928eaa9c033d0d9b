"""A LlamaIndex FunctionAgent on the embedded model: native tool calls, enforced by the search.

`initial_tool_choice` (LlamaIndex's own switch) makes the first turn a tool call and the LLM's `tool_choice="none"`
makes the turn after the result an answer in words: a 135M model rarely decides either by itself. The ToolArguments
reward prefers arguments copied from the request.
"""

import asyncio

from llama_index.core.agent.workflow import FunctionAgent, ToolCallResult
from llama_index.core.tools import FunctionTool

from deal_core.rewards import ToolArguments
from llamaindex_deal import DeALLLM


def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return f"Sunny, 21 degrees in {city}"


def build_agent() -> FunctionAgent:
    return FunctionAgent(tools=[FunctionTool.from_defaults(get_weather)],
                         llm=DeALLLM(max_tokens=64, rewards=[ToolArguments()], tool_choice="none"),
                         initial_tool_choice="get_weather",
                         system_prompt="Answer with the tool's result.")


async def run(question: str) -> tuple[list[ToolCallResult], str]:
    handler = build_agent().run(question)
    calls = [event async for event in handler.stream_events() if isinstance(event, ToolCallResult)]
    return calls, str(await handler)


def main() -> None:
    calls, answer = asyncio.run(run("What is the weather in Paris?"))
    for call in calls:
        print(f"call   {call.tool_name}({call.tool_kwargs}) -> {call.tool_output}")
    print(f"answer {answer}")


if __name__ == "__main__":
    main()
