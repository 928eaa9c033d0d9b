"""A conformance suite for the LlamaIndex DeALLLM, in the spirit of LangChain's standard tests, plus the RAG flow.
Everything runs on the real embedded model, real LlamaIndex classes and a real offline embedding model."""

import asyncio

import pytest
from llama_index.core import Document, Settings, VectorStoreIndex
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.llms import ChatMessage

from deal_core.rewards import Blocklist, Inoffensive, Keywords
from llamaindex_deal import (
    DeALLLM,
    GroundedQueryEngine,
    GuardedQueryEngine,
    ResponseGuardError,
    RewardNodeFilter,
    local_embedding,
)

MESSAGES = [ChatMessage(role="system", content="Be brief."), ChatMessage(role="user", content="Name a fruit.")]

pytestmark = pytest.mark.slow  # the real embedded model, loaded by the wrappers themselves


@pytest.fixture(scope="module")
def llm():
    return DeALLLM(max_tokens=20)


class Collector(BaseEventHandler):
    events: list = []

    @classmethod
    def class_name(cls) -> str:
        return "Collector"

    def handle(self, event, **kwargs):
        self.events.append(event.class_name())


@pytest.fixture
def events():
    collector = Collector(events=[])
    dispatcher = get_dispatcher()
    dispatcher.add_event_handler(collector)
    yield collector.events
    dispatcher.event_handlers.remove(collector)


def test_construction_loads_nothing_and_instances_share_weights(llm):
    fresh = DeALLLM(max_tokens=5)
    assert fresh._deal is None
    fresh.complete("hi")
    assert fresh._decoder().lm is llm._decoder().lm


def test_metadata_comes_from_the_model(llm):
    meta = llm.metadata
    assert meta.context_window == 8192 and meta.num_output == 20
    assert meta.is_chat_model and meta.model_name == "SmolLM2-135M-Instruct"


def test_complete_and_stream_complete(llm, events):
    full = llm.complete("Name a fruit.")
    assert full.text and full.additional_kwargs["stats"]["steps"] >= 1
    chunks = list(llm.stream_complete("Name a fruit."))
    assert "".join(c.delta for c in chunks) == chunks[-1].text == full.text
    assert all(a.text + b.delta == b.text for a, b in zip(chunks, chunks[1:]))  # cumulative text
    assert "LLMCompletionStartEvent" in events and "LLMCompletionEndEvent" in events
    assert "LLMCompletionInProgressEvent" in events


def test_chat_and_stream_chat(llm, events):
    reply = llm.chat(MESSAGES)
    assert reply.message.role == "assistant" and reply.message.content
    chunks = list(llm.stream_chat(MESSAGES))
    assert "".join(c.delta for c in chunks) == chunks[-1].message.content == reply.message.content
    assert {"LLMChatStartEvent", "LLMChatEndEvent", "LLMChatInProgressEvent"} <= set(events)


def test_async_variants_match_sync_and_do_not_block(llm):
    expected_complete = llm.complete("Name a fruit.").text
    expected_chat = llm.chat(MESSAGES).message.content

    async def run():
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        tick = asyncio.create_task(ticker())
        a = (await llm.acomplete("Name a fruit.")).text
        b = [c async for c in await llm.astream_complete("Name a fruit.")][-1].text
        c = (await llm.achat(MESSAGES)).message.content
        d = [c async for c in await llm.astream_chat(MESSAGES)][-1].message.content
        tick.cancel()
        return a, b, c, d, ticks

    a, b, c, d, ticks = asyncio.run(run())
    assert (a, b) == (expected_complete, expected_complete) and (c, d) == (expected_chat, expected_chat)
    assert ticks > 20  # the loop kept running while the searches ran in a worker thread


def test_per_call_kwargs_override_fields():
    llm = DeALLLM(max_tokens=20, rewards=[Keywords(["zebra"])])
    default = llm.complete("Describe your favourite animal in one sentence.")
    assert set(default.additional_kwargs["rewards"]) == {"keywords"}
    blocked = llm.complete("Describe your favourite animal in one sentence.",
                           rewards=[Blocklist(["majestic"], hard=True)], top_k=6)
    assert set(blocked.additional_kwargs["rewards"]) == {"blocklist"}
    assert "majestic" not in blocked.text.lower()
    assert llm.complete("Say hi", max_tokens=3).additional_kwargs["usage"]["completion_tokens"] <= 3
    with pytest.raises(ValueError, match="unknown argument"):
        llm.complete("hi", topk=3)


def test_works_as_settings_llm(llm):
    previous = Settings._llm
    Settings.llm = llm
    try:
        assert Settings.llm is llm
        assert Settings.llm.complete("Name a fruit.").text
    finally:
        Settings._llm = previous


DOCUMENTS = [
    "The Eiffel Tower is a wrought-iron lattice tower in Paris. It was completed in 1889 for the World's Fair.",
    "Mount Everest, at 8,849 metres, is Earth's highest mountain above sea level, in the Himalayas.",
    "Forum post: the Eiffel Tower is ugly and whoever likes it is a stupid idiot.",
    "Bananas are rich in potassium and are among the most widely eaten fruits in the world.",
]


@pytest.fixture(scope="module")
def index():
    return VectorStoreIndex.from_documents([Document(text=t) for t in DOCUMENTS], embed_model=local_embedding())


@pytest.mark.slow
def test_rag_end_to_end_grounds_on_the_retrieved_nodes(index, llm):
    engine = GroundedQueryEngine(retriever=index.as_retriever(similarity_top_k=2), llm=llm, rewards=[Inoffensive()],
                                 grounding_weight=2.0, call_kwargs={"reward_weight": 3.0, "max_tokens": 40})
    eiffel = engine.query("When was the Eiffel Tower completed?")
    everest = engine.query("How high is Mount Everest?")
    for response in (eiffel, everest):
        retrieved = [n.node.get_content() for n in response.source_nodes]
        assert response.metadata["grounding_context"] == retrieved
        assert set(response.metadata["rewards"]) == {"inoffensive", "grounding"}
    assert eiffel.metadata["grounding_context"] != everest.metadata["grounding_context"]
    assert "1889" in eiffel.response
    assert asyncio.run(engine.aquery("How high is Mount Everest?")).response == everest.response


def test_node_filter_drops_offensive_passages_before_the_prompt(index):
    retriever = index.as_retriever(similarity_top_k=3)
    nodes = retriever.retrieve("Is the Eiffel Tower ugly?")
    assert any("idiot" in n.node.get_content() for n in nodes)
    kept = RewardNodeFilter(reward=Inoffensive(), threshold=0.5).postprocess_nodes(
        nodes, query_str="Is the Eiffel Tower ugly?")
    assert kept and not any("idiot" in n.node.get_content() for n in kept)
    reranked = RewardNodeFilter(reward=Inoffensive(), mode="rerank").postprocess_nodes(
        retriever.retrieve("Is the Eiffel Tower ugly?"), query_str="Is the Eiffel Tower ugly?")
    assert "idiot" in reranked[-1].node.get_content()


def test_guarded_query_engine_raises_or_falls_back(index, llm):
    engine = GroundedQueryEngine(retriever=index.as_retriever(similarity_top_k=1), llm=llm,
                                 call_kwargs={"max_tokens": 16})
    ok = GuardedQueryEngine(query_engine=engine, reward=Inoffensive(), threshold=0.3).query("Where is Everest?")
    assert ok.metadata["reward_guard"]["total"] >= 0.3 and ok.source_nodes
    impossible = Keywords(["xyzzy"])
    with pytest.raises(ResponseGuardError, match="threshold 1"):
        GuardedQueryEngine(query_engine=engine, reward=impossible, threshold=1.0).query("Where is Everest?")
    fallback = GuardedQueryEngine(query_engine=engine, reward=impossible, threshold=1.0, on_fail="fallback",
                                  fallback="No answer.").query("Where is Everest?")
    assert fallback.response == "No answer." and fallback.metadata["reward_guard_fallback"]
