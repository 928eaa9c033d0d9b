"""Ready-made `create_agent` middleware for DeAL chat models, sync and async (`invoke` and `astream_events` alike).

```python
from langchain.agents import create_agent
from langchain_deal import ChatDeAL
from langchain_deal.middleware import GuardModelCalls, RetryOnBudget, StepRewards

agent = create_agent(ChatDeAL(max_tokens=64), tools, middleware=[
    StepRewards([ToolArguments()]),                      # rewards (and settings) on every model call
    GuardModelCalls(Safety(), threshold=0.5),            # score each answer; retry with more weight, then raise
    RetryOnBudget(),                                     # a budget-cut call or JSON answer: again with twice the budget
])
```
`ForceThenAnswer` forces a call while a bound tool is unused, then forces words: for models too small to decide even
with `ToolNeed` (the decoder's `"auto"` decision).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from deal_core.config import DeALConfig
from deal_core.errors import ConstraintError
from deal_core.guard import Guard
from deal_core.rewards import Reward, RewardSum, as_reward_sum

DEFAULT_BUDGET = DeALConfig().max_new_tokens  # for a model that sets none


def _answer(response: Any) -> AIMessage | None:
    messages = response.result if isinstance(response, ModelResponse) else [response]
    return next((m for m in reversed(messages) if isinstance(m, AIMessage)), None)


class _Policy(AgentMiddleware):
    """A model-call policy: `_first` changes the request, `_again` says whether (and how) to ask again."""

    attempts = 1

    def _first(self, request: ModelRequest) -> ModelRequest:
        return request

    def _again(self, request: ModelRequest, response: Any, error: Exception | None,
               attempt: int) -> ModelRequest | None:
        return None

    def _finish(self, request: ModelRequest, response: Any, error: Exception | None) -> Any:
        if error is not None:
            raise error
        return response

    def wrap_model_call(self, request: ModelRequest, handler: Callable[[ModelRequest], Any]) -> Any:
        request = self._first(request)
        for attempt in range(1, self.attempts + 1):
            try:
                response, error = handler(request), None
            except ConstraintError as exc:
                response, error = None, exc
            retry = self._again(request, response, error, attempt) if attempt < self.attempts else None
            if retry is None:
                return self._finish(request, response, error)
            request = retry
        raise AssertionError("unreachable")

    async def awrap_model_call(self, request: ModelRequest,
                               handler: Callable[[ModelRequest], Awaitable[Any]]) -> Any:
        request = self._first(request)
        for attempt in range(1, self.attempts + 1):
            try:
                response, error = await handler(request), None
            except ConstraintError as exc:
                response, error = None, exc
            retry = self._again(request, response, error, attempt) if attempt < self.attempts else None
            if retry is None:
                return self._finish(request, response, error)
            request = retry
        raise AssertionError("unreachable")


class StepRewards(_Policy):
    """Rewards and search settings (`reward_weight`, `top_k`, ...) for every model call of the agent, passed through
    `model_settings` (they survive `bind_tools`, which `create_agent` calls on the bare model)."""

    def __init__(self, rewards: Any = None, **settings: Any):
        super().__init__()
        self.settings = {**settings, **({"rewards": rewards} if rewards is not None else {})}

    def _first(self, request: ModelRequest) -> ModelRequest:
        return request.override(model_settings={**request.model_settings, **self.settings})


class RetryOnBudget(_Policy):
    """When the budget cut the answer (a `ConstraintError`, or a call that came back in `invalid_tool_calls`), ask
    again with `factor` times the budget, up to `max_retries` times; then the last outcome stands."""

    def __init__(self, max_retries: int = 1, factor: float = 2.0):
        super().__init__()
        if max_retries < 0 or factor <= 1:
            raise ValueError("RetryOnBudget needs max_retries >= 0 and factor > 1")
        self.attempts, self.factor = 1 + max_retries, factor

    def _again(self, request: ModelRequest, response: Any, error: Exception | None,
               attempt: int) -> ModelRequest | None:
        answer = None if error else _answer(response)
        if error is None and not (answer is not None and answer.invalid_tool_calls):
            return None
        budget = request.model_settings.get("max_tokens") or getattr(request.model, "max_tokens", None) \
            or DEFAULT_BUDGET
        return request.override(model_settings={**request.model_settings,
                                                "max_tokens": int(budget * self.factor)})


class GuardModelCalls(_Policy):
    """Scores each model answer with `reward` against the user's last message; below `threshold` it asks again with
    `retry_settings` (default: five times the reward weight and the reward itself steering the search), up to
    `max_retries` times, then raises `RewardGuardError` (`on_fail="raise"`) or keeps the answer (`"keep"`). The
    score is in the answer's `response_metadata["reward_guard"]`."""

    def __init__(self, reward: Reward | RewardSum, threshold: float, max_retries: int = 1,
                 retry_settings: dict[str, Any] | None = None, on_fail: str = "raise"):
        super().__init__()
        if on_fail not in ("raise", "keep"):
            raise ValueError(f"on_fail must be 'raise' or 'keep', got {on_fail!r}")
        self.guard = Guard(reward, threshold)
        self.attempts, self.on_fail = 1 + max_retries, on_fail
        self.retry_settings = retry_settings if retry_settings is not None else {
            "rewards": as_reward_sum(reward), "reward_weight": 5.0}

    def _score(self, request: ModelRequest, response: Any) -> tuple[bool, Any]:
        answer = _answer(response)
        if answer is None or answer.tool_calls:  # calls are checked by the output format, answers by the guard
            return True, None
        question = next((m.text for m in reversed(request.messages) if isinstance(m, HumanMessage)), "")
        score = self.guard.check(question, answer.text)
        answer.response_metadata["reward_guard"] = score.model_dump()
        return self.guard.passes(score), score

    def _again(self, request: ModelRequest, response: Any, error: Exception | None,
               attempt: int) -> ModelRequest | None:
        if error is not None or self._score(request, response)[0]:
            return None
        return request.override(model_settings={**request.model_settings, **self.retry_settings})

    def _finish(self, request: ModelRequest, response: Any, error: Exception | None) -> Any:
        if error is not None:
            raise error
        ok, score = self._score(request, response)
        if not ok and self.on_fail == "raise":
            raise self.guard.error(score, self.attempts)
        return response


class ForceThenAnswer(_Policy):
    """While some bound tools have not been called since the user's last message, a call is forced: `"any"` on the
    first turn, then the first unused tool by name (so a model cannot call the same tool again and again); then
    `"none"`: the agent gathers, then answers in words."""

    def _first(self, request: ModelRequest) -> ModelRequest:
        last_user = max((i for i, m in enumerate(request.messages) if isinstance(m, HumanMessage)), default=-1)
        used = {m.name for m in request.messages[last_user + 1:] if isinstance(m, ToolMessage)}
        pending = [t for t in request.tools if getattr(t, "name", None) not in used]
        if not pending:
            return request.override(tool_choice="none")
        return request.override(tool_choice="any" if not used else pending[0].name)
