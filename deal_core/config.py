"""Search settings, validated by pydantic with documented defaults and bounds."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from deal_core.errors import ConfigError, check_text, describe_validation_error

MAX_STOPS, MAX_STOP_CHARS = 16, 256  # stop strings are looked for in a window of the newest tokens at every step
MIN_TEMPERATURE = 0.01
# Each field's `json_schema_extra` says its scope — SHARED by every prompt of one batched search (the scheduler groups
# calls by these) or per CALL — and, where it differs, its name in the wrappers ("wrapper") and on the CLI ("cli").
# The wrappers' fields (params.py), the CLI options (cli/options.py), the server's `deal` body and the scheduler's
# grouping key are generated from these declarations; tests/architecture/test_declarations.py fails on a copy.
SHARED, CALL = "shared", "call"


def setting(default: Any, scope: str, description: str, *, wrapper: str | None = None, cli: str | None = None,
            **bounds: Any) -> Any:
    """One setting's declaration: default, scope, meaning, bounds, and its names elsewhere where they differ."""
    extra = {"scope": scope, **({"wrapper": wrapper} if wrapper else {}), **({"cli": cli} if cli else {})}
    return Field(default, description=description, json_schema_extra=extra, **bounds)


class DeALConfig(BaseModel):
    """Settings of one DeAL search. The defaults (top_k=10, lookahead=8, λ=3) were chosen from the measured
    trade-off in README ("Choosing the defaults"); the paper's own settings are top_k=5, lookahead=5, λ=1."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    top_k: int = setting(10, SHARED, "Candidate next tokens proposed by the LM at each step.", ge=1, le=200)
    lookahead: int = setting(8, SHARED, "Greedy rollout length used to score each candidate.", ge=0, le=128)
    beam_width: int = setting(1, SHARED, "Search states kept per prompt (1 = the paper).", ge=1, le=64)
    commit: int = setting(1, SHARED, "Tokens committed per step (1 = the paper; lookahead+1 = segment-level "
                                     "search).", ge=1)
    reward_weight: float = setting(3.0, SHARED, "λ: weight of the reward sum against the log-probability.",
                                   cli="--weight", ge=0.0, allow_inf_nan=False)
    max_new_tokens: int = setting(128, CALL, "Upper bound on generated tokens.", wrapper="max_tokens", ge=1, le=32768)
    temperature: float = setting(
        0.0, SHARED, "0: the candidates are the top_k most likely tokens (deterministic); 0.01-100: they are drawn "
                     "from the distribution at this temperature (within top_p).", ge=0.0, le=100.0, allow_inf_nan=False)
    top_p: float = setting(1.0, SHARED, "Nucleus mass the sampled proposals are drawn from.", gt=0.0, le=1.0)
    seed: int | None = setting(None, SHARED, "Seed for sampled proposals, 0 to 2**64-1 (None: nondeterministic).",
                               ge=0, le=2**64 - 1)
    repetition_penalty: float = setting(
        1.0, SHARED, "transformers' repetition penalty on every token already in the prompt or response (1 = off; "
                     "1.1-1.3 is typical), applied to the candidates and the lookahead alike.",
        gt=0.0, le=10.0, allow_inf_nan=False)
    no_repeat_ngram_size: int = setting(0, SHARED, "Never repeat an n-gram of this many tokens (transformers' rule; "
                                                   "0 = off).", ge=0, le=64)
    alignment_prompt: str | None = setting(None, CALL, "Instruction prepended as a system message (the paper's "
                                                       "start-state adaptation).")
    stop: tuple[str, ...] = setting((), CALL, "Stop strings; the output is cut before the first one.")
    prune: bool = setting(True, SHARED, "Skip lookahead for candidates that provably cannot win (exact).")
    reuse: bool = setting(True, SHARED, "Continue the winner's lookahead as next step's greedy candidate (exact).")
    trace: bool = setting(False, SHARED, "Record every step's candidates, rewards and winner.")
    timeout_s: float | None = setting(None, CALL, "Wall-clock limit per call; None = no limit.", wrapper="timeout",
                                      gt=0)
    tool_result_weight: float = setting(
        1.0, CALL, "Weight of `ToolResultUse` (how much of the tool results the answer states), added to the rewards "
                   "of an answer turn that follows tool results (0 = off; deal_core/tool_turns.py).",
        ge=0.0, le=100.0, allow_inf_nan=False)
    truncate_prompt: bool = setting(False, CALL, "Keep only the last tokens of a prompt too long for the context "
                                                 "window (else raise).")

    @model_validator(mode="before")
    @classmethod
    def _sample_means_temperature_one(cls, values: Any) -> Any:
        """`sample=True` (the older switch) is temperature 1 unless a temperature is given; `sample=False`, 0."""
        if isinstance(values, dict) and "sample" in values:
            values = dict(values)
            sample, temperature = values.pop("sample"), values.get("temperature")
            if not isinstance(sample, bool):
                raise ValueError(f"sample must be true or false, got {sample!r}")
            if temperature is not None and isinstance(temperature, (int, float)) and (temperature > 0) != sample:
                raise ValueError(f"sample={sample} contradicts temperature={temperature}: pass only temperature "
                                 "(0 = top-k candidates, > 0 = sampled)")
            if temperature is None:
                values["temperature"] = 1.0 if sample else 0.0
        return values

    @property
    def sample(self) -> bool:
        """Whether candidates are sampled (temperature > 0) rather than the top_k most likely tokens."""
        return self.temperature > 0

    @model_validator(mode="after")
    def _check_consistency(self) -> DeALConfig:
        if self.commit > self.lookahead + 1:
            raise ValueError(
                f"commit={self.commit} exceeds lookahead+1={self.lookahead + 1}: a step can only commit the "
                "candidate plus its lookahead; lower commit or raise lookahead"
            )
        if any(not s for s in self.stop):
            raise ValueError("stop strings must be non-empty; remove the empty string from stop")
        if len(self.stop) > MAX_STOPS or any(len(s) > MAX_STOP_CHARS for s in self.stop):
            raise ValueError(f"stop takes at most {MAX_STOPS} strings of at most {MAX_STOP_CHARS} characters each")
        if 0 < self.temperature < MIN_TEMPERATURE:
            raise ValueError(f"temperature {self.temperature} is too small to sample stably: use 0 (top-k "
                             f"candidates) or at least {MIN_TEMPERATURE}")
        for s in self.stop:
            check_text(s, "a stop string")
        if self.alignment_prompt is not None:
            check_text(self.alignment_prompt, "alignment_prompt")
        return self

    def updated(self, **overrides: Any) -> DeALConfig:
        """A copy with `overrides` applied and re-validated; None values are ignored."""
        return make_config(self, **overrides)


def make_config(base: DeALConfig | None = None, /, **overrides: Any) -> DeALConfig:
    """Build a validated config, turning pydantic's errors into a `ConfigError` that names each parameter."""
    values = base.model_dump() if base is not None else {}
    if overrides.get("sample") is not None and overrides.get("temperature") is None:
        values.pop("temperature", None)  # `sample` alone decides; the base's temperature does not contradict it
    values.update({k: v for k, v in overrides.items() if v is not None})
    if isinstance(values.get("stop"), str):
        values["stop"] = (values["stop"],)
    try:
        return DeALConfig(**values)
    except ValidationError as exc:
        raise ConfigError("invalid DeAL settings: " + describe_validation_error(exc)) from None


def setting_info(name: str) -> dict[str, str]:
    """A setting's declared metadata: scope, wrapper name and CLI name (defaults filled in)."""
    extra = DeALConfig.model_fields[name].json_schema_extra
    extra = extra if isinstance(extra, dict) else {}
    return {"scope": str(extra["scope"]), "wrapper": str(extra.get("wrapper", name)),
            "cli": str(extra.get("cli", "--" + name.replace("_", "-")))}


def shared_settings() -> tuple[str, ...]:
    """The settings every prompt of one batched search shares (a call with other values runs in another search)."""
    return tuple(n for n in DeALConfig.model_fields if setting_info(n)["scope"] == SHARED)


def wrapper_names() -> dict[str, str]:
    """DeALConfig field → the name the wrappers (LangChain, LlamaIndex) give it: `max_tokens`, `timeout`, …"""
    return {n: setting_info(n)["wrapper"] for n in DeALConfig.model_fields}


# Named settings, declared once: benchmarks, the middleware and the docs use these (`settings_of("paper")`), and
# tests/architecture/test_declarations.py fails on a literal copy elsewhere.
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},  # DeALConfig's own defaults
    "paper": {"top_k": 5, "lookahead": 5, "reward_weight": 1.0},  # Huang et al. (2024)'s settings
    "safety": {"top_k": 5, "lookahead": 5, "reward_weight": 5.0},  # the safety benchmarks' settings
}


def settings_of(preset: str) -> dict[str, Any]:
    """The search settings a preset names, every one spelled out (a copy: change it freely)."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}: use one of {', '.join(PRESETS)}")
    defaults = DeALConfig()
    return {**{k: getattr(defaults, k) for k in ("top_k", "lookahead", "reward_weight")}, **PRESETS[preset]}
