"""What the LlamaIndex wrapper hands to DeAL: one `Request` per call with chat messages carried faithfully (tool
calls in `additional_kwargs`, tool results), async streaming through `DeAL.astream`, the shared guard error, usage
and defaults from core. All on the tiny random model; no embedding model needed."""

import asyncio

import pytest
from llama_index.core.base.llms.types import ChatMessage, ChatResponse, CompletionResponse
from llama_index.core.base.response.schema import Response

from deal_core import DeAL, DeALConfig
from deal_core.guard import RewardGuardError
from deal_core.request import Request, ToolCall
from deal_core.rewards import Keywords, text_of
from llamaindex_deal import DeALLLM, GuardedQueryEngine, ResponseGuardError
from llamaindex_deal.convert import to_messages
from llamaindex_deal.llms import DEFAULT_NUM_OUTPUT
from tests.conftest import Recorder

PROMPT = "Hello there"
OPENAI_CALL = {"id": "c1", "type": "function", "function": {"name": "mul", "arguments": '{"a": 6, "b": 7}'}}
HISTORY = [
    ChatMessage(role="user", content="What is 6 times 7?"),
    ChatMessage(role="assistant", content=None, additional_kwargs={"tool_calls": [OPENAI_CALL]}),
    ChatMessage(role="tool", content="42", additional_kwargs={"tool_call_id": "c1", "name": "mul"}),
    ChatMessage(role="user", content="Well?"),
]


@pytest.fixture
def llm(tiny_lm):
    llm = DeALLLM(max_tokens=6)
    llm._deal = Recorder(DeAL(tiny_lm))
    return llm


def test_chat_messages_are_carried_with_tool_calls_and_results():
    messages = to_messages(HISTORY + [ChatMessage(role="chatbot", content="ok"),
                                      ChatMessage(role="function", content="7", additional_kwargs={"name": "add"})])
    assert [m.role for m in messages] == ["user", "assistant", "tool", "user", "assistant", "tool"]
    assert messages[1].tool_calls == (ToolCall(id="c1", name="mul", arguments={"a": 6, "b": 7}),)
    assert (messages[2].tool_call_id, messages[2].name, messages[2].content) == ("c1", "mul", "42")
    assert messages[5].name == "add"
    with_system = to_messages(HISTORY[:1], system_prompt="Be brief.")
    assert [(m.role, m.content) for m in with_system] == [("system", "Be brief."), ("user", "What is 6 times 7?")]
    assert to_messages([ChatMessage(role="system", content="Mine.")], system_prompt="Be brief.")[0].content == "Mine."


def test_each_call_is_one_request(llm):
    llm.chat(HISTORY, top_k=2, rewards=[Keywords(["dog"])])
    llm.complete(PROMPT, stop=".")
    (chat_name, (chat_request,), _), (complete_name, (complete_request,), _) = llm._deal.calls
    assert chat_name == complete_name == "generate"
    assert isinstance(chat_request, Request) and chat_request.messages == tuple(to_messages(HISTORY))
    assert chat_request.settings == {"max_new_tokens": 6, "top_k": 2}
    assert chat_request.rewards.labels == ["keywords"]
    assert complete_request.text == PROMPT and complete_request.settings["stop"] == "."


def test_async_streams_run_through_deal_astream(llm):
    expected = llm.complete(PROMPT).text

    async def run():
        completion = [r async for r in await llm.astream_complete(PROMPT)]
        chat = [r async for r in await llm.astream_chat([ChatMessage(role="user", content=PROMPT)])]
        return completion, chat

    completion, chat = asyncio.run(run())
    assert [name for name, *_ in llm._deal.calls] == ["generate", "astream", "astream"]
    assert completion[-1].text == chat[-1].message.content == expected
    assert completion[-1].delta == chat[-1].delta == ""
    assert completion[-1].additional_kwargs["usage"]["completion_tokens"] >= 1


def test_usage_and_defaults_come_from_core(llm):
    response = llm.complete(PROMPT)
    usage = response.additional_kwargs["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert DEFAULT_NUM_OUTPUT == DeALConfig().max_new_tokens
    default = DeALLLM()
    default._deal = llm._deal
    assert default.metadata.num_output == DEFAULT_NUM_OUTPUT and llm.metadata.num_output == 6


class FixedEngine:
    def query(self, query_str):
        return Response(response="a cat", metadata={"k": "v"})


def test_guarded_engine_raises_the_shared_error():
    assert ResponseGuardError is RewardGuardError
    engine = GuardedQueryEngine(query_engine=FixedEngine(), reward=Keywords(["dog"]), threshold=0.5)
    with pytest.raises(RewardGuardError, match="threshold 0.5") as caught:
        engine.query("Which animal?")
    assert caught.value.score.text == "a cat" and caught.value.attempts == 1


def test_rewards_score_llamaindex_outputs():
    reward = Keywords(["dog"])
    outputs = [ChatMessage(role="assistant", content="a dog"), CompletionResponse(text="a dog"),
               ChatResponse(message=ChatMessage(role="assistant", content="a dog")), Response(response="a dog")]
    assert [text_of(o) for o in outputs] == ["a dog"] * 4
    assert [reward(o).total for o in outputs] == [1.0] * 4
