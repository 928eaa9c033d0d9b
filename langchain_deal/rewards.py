"""Rewards in LangChain pipelines: as scoring steps, and as guards on any step's output."""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, convert_to_messages
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from langchain_core.runnables.utils import Input, Output

from deal_core.guard import Guard, RewardGuardError
from deal_core.rewards import Reward, RewardSum, Score, as_reward_sum, text_of
from langchain_deal import convert  # noqa: F401  (registers LangChain messages with text_of)

__all__ = ["RewardGuard", "RewardGuardError", "as_runnable"]


def _messages(value: Any) -> list[BaseMessage] | None:
    """The messages of an agent state (`{"messages": [...]}`) or a message list; None for anything else."""
    if isinstance(value, dict) and isinstance(value.get("messages"), list):
        value = value["messages"]
    if isinstance(value, list) and value and all(isinstance(m, (BaseMessage, dict)) for m in value):
        try:
            return convert_to_messages(value)
        except (ValueError, TypeError, NotImplementedError):
            return None
    return None


def as_runnable(reward: Reward | RewardSum, name: str | None = None) -> Runnable[Any, Score]:
    """A Runnable that scores its input (str, message or completion) and returns a `Score`.
    Plain `chain | reward` works too: LangChain wraps callables, rewards are callable, and `langchain_deal`
    registers LangChain's messages with `text_of`."""
    total = as_reward_sum(reward)
    return RunnableLambda(lambda output: total(output), name=name or "+".join(total.labels) or "reward")


class RewardGuard(Runnable[Input, Output]):
    """Runs `runnable`, scores its output with a `deal_core.guard.Guard(reward, threshold)`, and acts when the score
    is below `threshold`: `on_fail="raise"` raises `RewardGuardError`; `"fallback"` returns `fallback`; `"retry"`
    re-asks up to `max_retries` times (with `retry_kwargs` bound, e.g. `{"reward_weight": 5}` for a DeAL model)
    and then raises. The score is attached to chat messages' `response_metadata["reward_guard"]`.
    Works with any Runnable: a remote chat model, a chain, a `RunnableLambda`.
    """

    def __init__(self, runnable: Runnable[Input, Output], reward: Reward | RewardSum, threshold: float,
                 on_fail: Literal["raise", "fallback", "retry"] = "raise", fallback: Any = None,
                 max_retries: int = 1, retry_kwargs: dict[str, Any] | None = None, prompt_key: str | None = None):
        if on_fail not in ("raise", "fallback", "retry"):
            raise ValueError(f"on_fail must be 'raise', 'fallback' or 'retry', got {on_fail!r}")
        if on_fail == "fallback" and fallback is None:
            raise ValueError("on_fail='fallback' needs fallback=<value to return>")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.guard = Guard(reward, threshold)
        self.runnable, self.reward, self.threshold = runnable, self.guard.reward, threshold
        self.on_fail, self.fallback, self.max_retries = on_fail, fallback, max_retries
        self.retry_kwargs, self.prompt_key = retry_kwargs or {}, prompt_key

    @property
    def InputType(self) -> Any:  # LangChain's property name
        return self.runnable.InputType

    def bind_tools(self, tools: Any, **kwargs: Any) -> RewardGuard:
        """The guarded chat model with tools bound, still guarded: `create_agent(RewardGuard(chat, ...), tools)`."""
        return RewardGuard(self.runnable.bind_tools(tools, **kwargs), self.reward, self.threshold, self.on_fail,
                           self.fallback, self.max_retries, self.retry_kwargs, self.prompt_key)

    def _prompt(self, value: Any) -> str:
        if self.prompt_key and isinstance(value, dict):
            return str(value.get(self.prompt_key, ""))
        messages = _messages(value)
        if messages is not None:  # agent state or a message list: the user's last message
            return next((m.text for m in reversed(messages) if isinstance(m, HumanMessage)), "")
        try:
            return text_of(value)
        except TypeError:
            return ""

    def _check(self, output: Any, value: Any) -> tuple[bool, Score]:
        messages = _messages(output)
        if messages is not None:  # agent state: the last AI message is the answer
            output = next((m for m in reversed(messages) if isinstance(m, AIMessage)), "")
        score = self.guard.check(self._prompt(value), text_of(output))
        metadata = getattr(output, "response_metadata", None)
        if isinstance(metadata, dict):
            metadata["reward_guard"] = score.model_dump()
        return self.guard.passes(score), score

    def _attempts(self) -> int:
        return 1 + (self.max_retries if self.on_fail == "retry" else 0)

    def _failed(self, score: Score, attempts: int) -> Any:
        if self.on_fail == "fallback":
            return self.fallback
        raise self.guard.error(score, attempts)

    def invoke(self, input: Input, config: RunnableConfig | None = None, **kwargs: Any) -> Output:
        runnable = self.runnable
        for attempt in range(1, self._attempts() + 1):
            output = runnable.invoke(input, config, **kwargs)
            ok, score = self._check(output, input)
            if ok:
                return output
            if self.retry_kwargs:
                runnable = self.runnable.bind(**self.retry_kwargs)
        return self._failed(score, attempt)

    async def ainvoke(self, input: Input, config: RunnableConfig | None = None, **kwargs: Any) -> Output:
        runnable = self.runnable
        for attempt in range(1, self._attempts() + 1):
            output = await runnable.ainvoke(input, config, **kwargs)
            ok, score = self._check(output, input)
            if ok:
                return output
            if self.retry_kwargs:
                runnable = self.runnable.bind(**self.retry_kwargs)
        return self._failed(score, attempt)
