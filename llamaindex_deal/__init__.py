"""LlamaIndex integration for DeAL decoding-time alignment."""

from deal_core.guard import RewardGuardError
from llamaindex_deal import convert  # noqa: F401  (registers LlamaIndex's outputs with deal_core's text_of)
from llamaindex_deal.llms import DeALLLM
from llamaindex_deal.rag import (
    GroundedQueryEngine,
    GuardedQueryEngine,
    ResponseGuardError,
    RewardNodeFilter,
    local_embedding,
)

__all__ = ["DeALLLM", "GroundedQueryEngine", "GuardedQueryEngine", "ResponseGuardError", "RewardGuardError",
           "RewardNodeFilter", "local_embedding"]
