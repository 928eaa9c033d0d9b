"""What one request may ask of a `deal serve` server: limits its operator sets (`deal serve --max-top-k …`).

A request's cost is what the search does per step — candidate rows (top_k × beam_width), each rolled out
`lookahead` tokens — and how long its rows are (prompt + completion + lookahead tokens held in the KV cache per row).
Each limit is checked before any work starts and a request over one gets a 400 that names the limit and the field
to change. `timeout_s` bounds every request's wall-clock time; a request may ask for less, never more.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from deal_core.config import DeALConfig
from deal_core.errors import LimitError


class ServerLimits(BaseModel):
    """Per-request limits (defaults in README, "OpenAI-compatible server"). Every field is a `deal serve` option."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_request_bytes: int = Field(1_000_000, ge=1, description="Largest request body, however it is sent.")
    max_tokens: int = Field(1024, ge=1, description="Most completion tokens one request may ask for (max_tokens, "
                                                    "max_completion_tokens or deal.max_new_tokens).")
    max_prompt_tokens: int = Field(1024, ge=1, description="Most prompt tokens (longer prompts are a 400, or keep "
                                                           "their last tokens with deal.truncate_prompt).")
    max_top_k: int = Field(20, ge=1, description="Most candidates per step (deal.top_k).")
    max_lookahead: int = Field(16, ge=0, description="Longest rollout per candidate (deal.lookahead).")
    max_beam_width: int = Field(4, ge=1, description="Most search states per prompt (deal.beam_width).")
    max_reward_weight: float = Field(100.0, ge=0, description="Largest λ (deal.reward_weight).")
    max_step_tokens: int = Field(320, ge=1, description="Most rollout tokens per search step: top_k × beam_width × "
                                                        "lookahead.")
    max_kv_tokens: int = Field(65_536, ge=1, description="Most KV-cache tokens one request may hold: top_k × "
                                                         "beam_width × (prompt + completion + lookahead tokens).")
    timeout_s: float = Field(120.0, gt=0, description="Wall-clock limit per request (deal.timeout_s may only lower "
                                                      "it); past it the request ends with a 408 timeout error.")
    max_concurrent: int = Field(32, ge=1, description="Requests in flight at once; more get a 429 to retry.")
    reward_models: dict[str, str] = Field(
        default_factory=dict, json_schema_extra={"cli": "--reward-model"},
        description="A model request reward specs may name (judge, reward_model) as NAME=PATH; a request names NAME, "
                    "never a path.")
    api_key: str | None = Field(None, repr=False, json_schema_extra={"envvar": "DEAL_API_KEY"},
                                description="Bearer token every /v1 request must carry (default: none, no check).")
    cors_origins: tuple[str, ...] = Field((), json_schema_extra={"cli": "--cors-origin"},
                                          description="A browser origin CORS allows (default: none).")


# (DeALConfig field, ServerLimits field): a setting's largest allowed value
_CAPS = (("top_k", "max_top_k"), ("lookahead", "max_lookahead"), ("beam_width", "max_beam_width"),
         ("reward_weight", "max_reward_weight"), ("max_new_tokens", "max_tokens"))


def check_caps(settings: Mapping[str, Any], limits: ServerLimits, asked: Mapping[str, Any]) -> None:
    """Each capped setting given as a number at most its limit (checked first: the limit is the clearer error)."""
    for setting, cap in _CAPS:
        value, most = settings.get(setting), getattr(limits, cap)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > most:
            where = asked.get(setting, f"deal.{setting}")
            raise LimitError(f"{where}={value} exceeds this server's limit of {most} ({cap}); lower it", param=where)


def check_settings(config: DeALConfig, limits: ServerLimits, asked: Mapping[str, Any]) -> None:
    """The request's effective settings against the limits (prompt-independent ones; see `check_prompt`).
    `asked` maps a setting to the request field it came from, for the error's `param`."""
    check_caps({s: getattr(config, s) for s, _ in _CAPS}, limits, asked)
    rows = config.top_k * config.beam_width
    if rows * config.lookahead > limits.max_step_tokens:
        raise LimitError(f"top_k × beam_width × lookahead = {config.top_k} × {config.beam_width} × {config.lookahead}"
                         f" = {rows * config.lookahead} rollout tokens per step, over this server's limit of "
                         f"{limits.max_step_tokens} (max_step_tokens); lower top_k, beam_width or lookahead",
                         param="deal")
    if config.timeout_s is not None and config.timeout_s > limits.timeout_s:
        raise LimitError(f"deal.timeout_s={config.timeout_s} exceeds this server's limit of {limits.timeout_s}s "
                         "(timeout_s); lower it or leave it out", param="deal.timeout_s")


def check_prompt(config: DeALConfig, limits: ServerLimits, prompt_tokens: int) -> None:
    """The KV-cache footprint of a tokenized request: rows × tokens per row."""
    rows = config.top_k * config.beam_width
    per_row = prompt_tokens + config.max_new_tokens + config.lookahead
    if rows * per_row > limits.max_kv_tokens:
        raise LimitError(f"this request would hold top_k × beam_width × (prompt + max_tokens + lookahead) = {rows} × "
                         f"{per_row} = {rows * per_row} KV-cache tokens, over this server's limit of "
                         f"{limits.max_kv_tokens} (max_kv_tokens); lower top_k, beam_width or max_tokens, or "
                         "shorten the prompt", param="deal")
