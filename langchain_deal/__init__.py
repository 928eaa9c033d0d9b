"""LangChain integration for DeAL decoding-time alignment."""

from langchain_deal.chat_models import ChatDeAL
from langchain_deal.llms import DeALLLM
from langchain_deal.rewards import RewardGuard, RewardGuardError, as_runnable

__all__ = ["ChatDeAL", "DeALLLM", "RewardGuard", "RewardGuardError", "as_runnable"]
