"""What a search returns: the text, its scores, counters, and (optionally) why each token was chosen."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, computed_field

from deal_core.request import ToolCall


class SearchStats(BaseModel):
    """Counters for one call (shared by all prompts of a batched call)."""

    steps: int = 0
    forward_passes: int = 0
    tokens_evaluated: int = Field(0, description="Token positions run through the model, prompt included.")
    reward_calls: int = 0
    texts_scored: int = 0
    candidates_pruned: int = 0
    candidates_rolled_out: int = Field(0, description="Candidates whose lookahead was run (a reused one counts too).")
    rollout_tokens: int = Field(0, description="Lookahead tokens generated for them.")
    candidates_needed: int = Field(
        0, description="Candidates no exact pruning could have skipped even had the winner been scored first: those "
                       "whose log-probability plus λ·(reward upper bound) reaches the winner's score.")
    wall_time_s: float = 0.0


class CandidateTrace(BaseModel):
    token: str
    lookahead: str
    logprob: float
    rewards: dict[str, float] = Field(default_factory=dict)
    score: float | None = None
    status: Literal["won", "lost", "pruned"]


class StepTrace(BaseModel):
    step: int
    beam: int
    prefix: str
    candidates: list[CandidateTrace]


class Usage(BaseModel):
    """Token counts of one call (or, summed with `+`, of several): what the wrappers report as usage."""

    model_config = ConfigDict(frozen=True)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @computed_field
    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(prompt_tokens=self.prompt_tokens + other.prompt_tokens,
                     completion_tokens=self.completion_tokens + other.completion_tokens)


class GenerationResult(BaseModel):
    text: str = Field(description="The answer's text; with tools, the text before the tool calls.")
    token_ids: list[int]
    logprob: float = Field(description="Sum of the model's log-probabilities of the generated tokens.")
    rewards: dict[str, float] = Field(description="Each reward's raw value on the final text.")
    reward_total: float = Field(description="Weighted reward sum on the final text (before λ).")
    finish_reason: Literal["eos", "stop", "length", "tool_calls"]
    prompt_tokens: int
    tool_calls: list[ToolCall] = Field(default_factory=list, description="Calls the answer makes (with tools).")
    invalid_tool_calls: list[dict[str, Any]] = Field(
        default_factory=list, description="Calls the budget cut (each {'name', 'args': raw text, 'error'}): never "
        "returned as runnable calls; raise max_new_tokens and ask again.")
    parsed: Any = Field(None, description="The answer as JSON, with a json_schema or json_object response format.")
    raw_text: str | None = Field(None, description="The text as generated, where it differs from `text` "
                                 "(tool-call markup); rewards score this.")
    constraint_fallback: bool = Field(
        False, description="True when every candidate of some step was vetoed by a hard constraint."
    )
    stats: SearchStats
    trace: list[StepTrace] | None = None
    _ended: bool = PrivateAttr(False)  # an end-of-sequence token closed the answer (its log-prob is in `logprob`)

    def summary(self) -> dict[str, Any]:
        """What the search did, in the one shape every frontend shows it (LangChain and LlamaIndex metadata, the
        server's `deal` field, a batch row): finish reason, each reward and their total, log P, whether the output
        format fell back, and the search's counters."""
        return {"finish_reason": self.finish_reason, "rewards": self.rewards, "reward_total": self.reward_total,
                "logprob": self.logprob, "constraint_fallback": self.constraint_fallback,
                "stats": self.stats.model_dump()}

    @property
    def usage(self) -> Usage:
        """Prompt tokens (after the chat template) and generated tokens."""
        return Usage(prompt_tokens=self.prompt_tokens, completion_tokens=len(self.token_ids))
