"""What the LangChain wrappers hand to DeAL: one `Request` per call with the messages carried faithfully (tool calls,
tool results), LangChain's own arguments dropped, async streaming through `DeAL.astream`, one guard error type.
All on the tiny random model."""

import asyncio
import threading
import time

import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration
from langchain_core.runnables import RunnableLambda

import llamaindex_deal
from deal_core import DeAL, PromptError
from deal_core.guard import RewardGuardError
from deal_core.request import Message, Request, ToolCall
from deal_core.rewards import FunctionReward, Keywords, text_of
from langchain_deal import ChatDeAL, DeALLLM, RewardGuard
from langchain_deal import RewardGuardError as LangChainGuardError
from langchain_deal.convert import search_overrides, to_messages
from tests.conftest import Recorder

PROMPT = "Hello there"
HISTORY = [
    SystemMessage("Be brief."),
    HumanMessage("What is 6 times 7?"),
    AIMessage("", tool_calls=[{"name": "mul", "args": {"a": 6, "b": 7}, "id": "c1"}]),
    ToolMessage("42", tool_call_id="c1", name="mul"),
    HumanMessage("Well?"),
]


def recorded(wrapper, tiny_lm):
    recorder = Recorder(DeAL(tiny_lm))
    wrapper._deal = recorder
    return wrapper, recorder


def test_messages_are_carried_with_tool_calls_and_results():
    messages = to_messages(HISTORY + [ChatMessage(role="ai", content="ok"), FunctionMessage("7", name="add"),
                                      AIMessageChunk(content="partial")])
    assert [m.role for m in messages] == ["system", "user", "assistant", "tool", "user", "assistant", "tool",
                                          "assistant"]
    assert messages[2].tool_calls == (ToolCall(id="c1", name="mul", arguments={"a": 6, "b": 7}),)
    assert (messages[3].tool_call_id, messages[3].name, messages[3].content) == ("c1", "mul", "42")
    assert messages[6].name == "add" and messages[6].tool_call_id is None
    assert to_messages([HumanMessage([{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}])]) == [
        Message(role="user", content="Hi there")]
    with pytest.raises(PromptError, match="lone surrogate"):
        to_messages([HumanMessage("Hi \ud800")])
    with pytest.raises(PromptError, match="role"):
        to_messages([ChatMessage(role="narrator", content="Once")])


def test_each_call_is_one_request(tiny_lm):
    chat, deal = recorded(ChatDeAL(max_tokens=4, top_k=2, rewards=[Keywords(["dog"])]), tiny_lm)
    chat.invoke(HISTORY, stop=["\n"], reward_weight=2.0)
    (name, args, kwargs), = deal.calls
    assert name == "generate" and kwargs == {} and len(args) == 1 and isinstance(args[0], Request)
    request = args[0]
    assert request.messages == tuple(to_messages(HISTORY))
    assert request.settings == {"max_new_tokens": 4, "top_k": 2, "stop": ["\n"], "reward_weight": 2.0}
    assert request.rewards.labels == ["keywords"]

    llm, deal = recorded(DeALLLM(max_tokens=4), tiny_lm)
    llm.batch([PROMPT, "Good day"])
    (name, args, _), = deal.calls
    assert name == "generate_batch" and [r.text for r in args[0]] == [PROMPT, "Good day"]


def test_langchain_arguments_stay_in_langchain():
    assert search_overrides(["x"], {"ls_structured_output_format": {}, "callbacks": [], "tags": [], "metadata": {},
                                    "run_name": "r", "top_k": 3}) == {"top_k": 3, "stop": ["x"]}
    assert search_overrides(None, {}) == {}


@pytest.mark.parametrize("cls", [ChatDeAL, DeALLLM])
def test_async_streaming_runs_through_deal_astream(cls, tiny_lm):
    model, deal = recorded(cls(max_tokens=6), tiny_lm)
    expected = model.invoke(PROMPT)
    expected = getattr(expected, "content", expected)

    async def run():
        return [c async for c in model.astream(PROMPT)]

    chunks = asyncio.run(run())
    assert [name for name, _, _ in deal.calls][1:] == ["astream"]
    assert "".join(getattr(c, "content", c) for c in chunks) == expected
    if cls is ChatDeAL:
        assert chunks[-1].usage_metadata["output_tokens"] >= 1 and chunks[-1].chunk_position == "last"


def test_closing_an_async_stream_stops_the_search(tiny_lm):
    calls = []

    def slow(prompts, texts):
        calls.append(threading.get_ident())
        time.sleep(0.005)
        return [0.5] * len(texts)

    chat = ChatDeAL(max_tokens=200, top_k=2, lookahead=1)
    chat._deal = DeAL(tiny_lm)
    reward = FunctionReward(slow, label="slow", bounds=(0, 1))

    async def run():
        stream = chat.astream(PROMPT, rewards=[reward])
        async for _ in stream:
            break
        await stream.aclose()
        seen = len(calls)
        await asyncio.sleep(0.3)
        return seen, len(calls)

    closed_at, later = asyncio.run(run())
    assert later - closed_at <= 2  # at most the step in flight finishes
    assert later < 150  # the search did not run to the end


def test_rewards_score_langchain_outputs_and_guards_share_one_error():
    assert text_of(AIMessage("a dog")) == "a dog"
    assert text_of(ChatGeneration(message=AIMessage("a dog"))) == "a dog"
    assert (RunnableLambda(lambda _: AIMessage("a dog")) | Keywords(["dog"])).invoke("x").total == 1.0
    guard = RewardGuard(RunnableLambda(lambda _: AIMessage("a cat")), Keywords(["dog"]), threshold=0.5)
    with pytest.raises(RewardGuardError, match="threshold 0.5") as caught:
        guard.invoke("x")
    assert caught.value.attempts == 1 and caught.value.score.text == "a cat"
    assert LangChainGuardError is RewardGuardError is llamaindex_deal.ResponseGuardError
