"""Hostile inputs at the LlamaIndex wrappers (issue 13): constructor arguments, string `stop`, null message content,
vetoed nodes in reranking, blank retrieved nodes. All on the tiny random model; no embedding model needed."""

import math

import pytest
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.llms import ChatMessage
from llama_index.core.schema import NodeWithScore, TextNode

from deal_core import ConfigError, DeAL
from deal_core.rewards import Blocklist, Constraint, Keywords
from llamaindex_deal import DeALLLM, GroundedQueryEngine, RewardNodeFilter

PROMPT = "Hello there"


@pytest.fixture
def llm(tiny_lm):
    llm = DeALLLM(max_tokens=24)
    llm._deal = DeAL(tiny_lm)  # the decoder it would load on first use, swapped for the tiny model
    return llm


class FixedRetriever(BaseRetriever):
    def __init__(self, texts):
        super().__init__()
        self.texts = texts

    def _retrieve(self, query_bundle):
        return [NodeWithScore(node=TextNode(text=t), score=0.5) for t in self.texts]


def test_constructor_arguments_are_checked(llm, tiny_lm):
    with pytest.raises(ConfigError, match=r"unknown argument 'top_kk' \(did you mean 'top_k'\?\)"):
        DeALLLM(top_kk=1)
    with pytest.raises(ConfigError, match="lookahead"):
        DeALLLM(lookahead=-1)
    short = DeALLLM(max_new_tokens=3, system_prompt="Be brief.", completion_to_prompt=lambda p: p)
    short._deal = llm._deal
    assert short.max_tokens == 3
    assert short.complete(PROMPT).additional_kwargs["usage"]["completion_tokens"] <= 3


def test_a_string_stop_is_one_stop_string(llm):
    full = llm.complete(PROMPT).text
    stop = next(w for w in full.split()[1:] if len(w) > 1 and any(c in full[: full.index(w)] for c in w))
    assert llm.complete(PROMPT, stop=stop).text == llm.complete(PROMPT, stop=[stop]).text == full[: full.index(stop)]


def test_null_content_chat_message_is_empty(llm):
    history = [ChatMessage(role="user", content="What is 6 times 7?"), ChatMessage(role="assistant", content=None),
               ChatMessage(role="user", content="Well?")]
    assert llm.chat(history).message.content is not None


NODES = {"tower": ("The tower stands in Paris.", 0.5), "banana": ("Bananas are yellow.", 0.9),
         "vetoed": ("That tower is for idiots.", 0.0), "unscored": ("Idiots everywhere.", None)}


def nodes():
    return [NodeWithScore(node=TextNode(text=text), score=score) for text, score in NODES.values()]


def test_rerank_ranks_vetoed_nodes_last_without_nan():
    veto = Keywords(["tower"]) + Constraint(reward=Blocklist(["idiot"]), threshold=1.0)
    ranked = RewardNodeFilter(reward=veto, mode="rerank").postprocess_nodes(nodes(), query_str="tower")
    scores = [n.score for n in ranked]
    assert not any(math.isnan(s) for s in scores)
    assert [n.node.get_content() for n in ranked[:2]] == [NODES["tower"][0], NODES["banana"][0]]
    assert scores[2:] == [-math.inf, -math.inf] and scores[0] > scores[1]
    kept = RewardNodeFilter(reward=veto, threshold=-1.0).postprocess_nodes(nodes(), query_str="tower")
    assert [n.node.get_content() for n in kept] == [NODES["tower"][0], NODES["banana"][0]]  # "drop" drops vetoes


@pytest.mark.parametrize("texts", [[], ["", "   \n\t"]], ids=["no-nodes", "blank-nodes"])
def test_blank_retrieval_takes_the_no_context_path(llm, texts):
    engine = GroundedQueryEngine(retriever=FixedRetriever(texts), llm=llm, call_kwargs={"max_tokens": 4})
    response = engine.query("Where is the tower?")
    empty = GroundedQueryEngine(retriever=FixedRetriever([]), llm=llm, call_kwargs={"max_tokens": 4})
    assert response.response == empty.query("Where is the tower?").response
    assert response.source_nodes == [] and response.metadata["grounding_context"] == []
    assert "grounding" not in response.metadata["rewards"]


def test_blank_nodes_are_left_out_of_the_context(llm):
    engine = GroundedQueryEngine(retriever=FixedRetriever(["", "The tower stands in Paris.", " "]), llm=llm)
    assert [n.node.get_content() for n in engine._nodes("Where?")] == ["The tower stands in Paris."]


def test_repetition_settings_reach_the_search(llm, tiny_lm):
    tuned = DeALLLM(max_tokens=12, no_repeat_ngram_size=2, repetition_penalty=1.3, completion_to_prompt=lambda p: p)
    tuned._deal = llm._deal
    expected = DeAL(tiny_lm).generate(PROMPT, max_new_tokens=12, no_repeat_ngram_size=2, repetition_penalty=1.3)
    assert tuned.complete(PROMPT).text == expected.text
    with pytest.raises(ConfigError, match="repetition_penalty"):
        DeALLLM(repetition_penalty=0)
