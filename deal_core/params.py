"""The search settings the framework wrappers (LangChain, LlamaIndex) expose as model fields. No framework imports.

`DeALParams` only declares the fields and checks them at construction. A wrapper call builds its `Request`
itself, explicitly:

    rewards, settings = call_settings(self, overrides)     # fields, then bound/per-call values
    request = Request.of(converted_messages, rewards, **settings)
    result = self._decoder().generate(request)

Framework-specific arguments (LangChain's `callbacks`, `ls_*`, `max_retries`, ...) are the wrappers' business: they
drop them before calling `call_settings`, which rejects any argument it does not know.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, create_model, field_validator

from deal_core.config import DeALConfig, make_config, wrapper_names
from deal_core.decoder import DeAL
from deal_core.errors import ConfigError, describe_validation_error
from deal_core.model import EMBEDDED_MODEL, load_model
from deal_core.result import GenerationResult
from deal_core.rewards import Reward, RewardSum, as_reward_sum

# The fields' names follow hosted-model APIs (OpenAI, LangChain, LlamaIndex): DeALConfig declares them ("wrapper").
_ALIASES = {wrapper: name for name, wrapper in wrapper_names().items() if wrapper != name}  # max_tokens, timeout
SEARCH_FIELDS = frozenset(set(DeALConfig.model_fields) | set(_ALIASES) | {"sample"})  # sample: the older switch
# ...and DeALConfig's names accepted for those fields at construction: `max_new_tokens=` sets `max_tokens`.
_FIELD_ALIASES = {config_name: field for field, config_name in _ALIASES.items()}


def _wrapper_type(annotation: Any) -> Any:
    """A setting's type as a wrapper field: optional (None: DeALConfig's default); many strings as a list."""
    if typing.get_origin(annotation) is tuple:
        return list[typing.get_args(annotation)[0]] | None
    return annotation | None


def _search_fields() -> dict[str, Any]:
    """Every DeALConfig setting as a wrapper field, under its wrapper name, with its description."""
    return {wrapper: (_wrapper_type(DeALConfig.model_fields[name].annotation),
                      Field(None, description=DeALConfig.model_fields[name].description))
            for name, wrapper in wrapper_names().items()}


class _Params(BaseModel):
    """Search settings as model fields (None: `DeALConfig`'s default). Any of them, and `rewards`, can be bound or
    passed per call; per-call values win. The model loads on first use (`_decoder()`)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    model: str | None = Field(None, description="HF id or local path; None = embedded SmolLM2-135M-Instruct.")
    device: str | None = None
    dtype: str | None = None
    engine: str | None = Field(None, description="auto | llamacpp | transformers (None: $DEAL_ENGINE, else auto).")
    rewards: list[Reward | RewardSum] | None = None
    use_chat_template: bool | None = None

    _deal: DeAL | None = PrivateAttr(None)

    def __init__(self, **data: Any) -> None:
        """Unknown arguments, bad values and inconsistent search settings raise `ConfigError` here, not later."""
        cls = type(self)
        for config_name, field in _FIELD_ALIASES.items():
            if config_name in data:
                if field in data:
                    raise ConfigError(f"{cls.__name__}: pass {field}= or {config_name}=, not both")
                data[field] = data.pop(config_name)
        known = set(cls.model_fields) | {f.alias for f in cls.model_fields.values() if f.alias}
        for name in data:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"{cls.__name__}: unknown argument {name!r}{hint}; it accepts {sorted(known)}")
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError(f"invalid {cls.__name__} settings: {describe_validation_error(exc)}") from None
        make_config(**call_settings(self, {})[1])

    @field_validator("stop", mode="before", check_fields=False)
    @classmethod
    def _one_stop_string(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @property
    def model_name(self) -> str:
        return self.model or EMBEDDED_MODEL

    def _decoder(self) -> DeAL:
        """Loaded on first use; every instance naming the same model shares one copy of the weights."""
        if self._deal is None:
            self._deal = DeAL(load_model(self.model, self.device, self.dtype, engine=self.engine),
                              use_chat_template=self.use_chat_template)
        return self._deal


# The wrappers' base: `_Params` plus one field per DeALConfig setting, generated (never written out twice).
DeALParams = create_model("DeALParams", __base__=_Params, __module__=__name__, **_search_fields())
DeALParams.__doc__ = _Params.__doc__

OUTPUT_ARGS = ("tools", "tool_choice", "parallel_tool_calls", "response_format")


def output_args(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Pops what shapes the output (tools, tool choice, response format) from a call's arguments, for
    `Request.of`; `strict` is accepted and needs nothing: the format is always enforced."""
    kwargs.pop("strict", None)
    return {k: kwargs.pop(k) for k in OUTPUT_ARGS if k in kwargs}


def _field_settings(params: _Params) -> dict[str, Any]:
    """The search settings `params` holds as fields (None = DeALConfig's default)."""
    return {name: getattr(params, name) for name in type(params).model_fields if name in SEARCH_FIELDS}


def call_settings(params: _Params, overrides: Mapping[str, Any]) -> tuple[RewardSum, dict[str, Any]]:
    """The rewards and DeALConfig overrides of one call: `params`' fields, then `overrides` (bound or per-call
    values, `rewards` and `stop` included). An argument that is no search setting is a `ConfigError`."""
    values = _field_settings(params)
    rewards = None
    for key, value in overrides.items():
        if key == "rewards":
            rewards = value
        elif key in SEARCH_FIELDS:
            values[key] = value
        else:
            raise ConfigError(f"unknown argument {key!r}; DeAL accepts rewards and {sorted(SEARCH_FIELDS)}")
    settings = {_ALIASES.get(k, k): v for k, v in values.items() if v is not None}
    return as_reward_sum(params.rewards if rewards is None else rewards), settings


def search_params(params: _Params) -> dict[str, Any]:
    """The model, its field settings and reward specs: what identifies a wrapper for tracing and caching."""
    out = {k: v for k, v in _field_settings(params).items() if v is not None}
    out["model"] = params.model_name
    out["rewards"] = reward_specs(as_reward_sum(params.rewards))
    return out


def reward_specs(rewards: RewardSum) -> list[Any]:
    """Specs for tracing and cache keys; code-only rewards are described by their repr."""
    return [t.reward.spec() | {"weight": t.weight} if t.reward.kind else repr(t) for t in rewards.terms]


def result_metadata(result: GenerationResult, model_name: str) -> dict[str, Any]:
    """What tracing (LangSmith, LlamaIndex instrumentation) shows: why the output looks as it does."""
    meta = {"model_name": model_name, **result.summary()}
    if result.trace is not None:
        meta["trace"] = [step.model_dump() for step in result.trace]
    return meta
