"""The framework-neutral pieces the wrappers share: `text_of` (strings and dicts only), `Guard`/`RewardGuardError`,
`GenerationResult.usage`, and `call_settings` (which knows no framework's arguments)."""

import pytest

from deal_core.errors import ConfigError, DeALError
from deal_core.guard import Guard, RewardGuardError
from deal_core.params import DeALParams, call_settings
from deal_core.result import GenerationResult, SearchStats, Usage
from deal_core.rewards import Keywords, text_of


class Message:
    content = "dog"


def test_text_of_takes_strings_and_dicts_only():
    assert text_of("a dog") == "a dog"
    assert text_of({"output": "a dog", "other": 1}) == "a dog"
    with pytest.raises(TypeError, match="pass a string"):
        text_of(Message())  # no duck typing of framework objects in core
    with pytest.raises(TypeError, match="dict"):
        text_of({"n": 1})
    assert Keywords(["dog"])("a dog").total == 1.0  # a reward still scores a string directly


def test_guard_checks_a_text_against_its_threshold():
    guard = Guard(Keywords(["dog", "park"]), threshold=0.75)
    good, half = guard.check("prompt", "a dog in a park"), guard.check("prompt", "a dog")
    assert guard.passes(good) and not guard.passes(half)
    assert half.total == 0.5 and half.components == {"keywords": 0.5}
    error = guard.error(half, attempts=2)
    assert isinstance(error, RewardGuardError) and isinstance(error, DeALError) and isinstance(error, ValueError)
    assert (error.score, error.threshold, error.attempts) == (half, 0.75, 2)
    assert "threshold 0.75 after 2 attempt(s)" in str(error) and "keywords=0.500" in str(error)


def test_usage_is_built_once_and_sums():
    result = GenerationResult(text="hi", token_ids=[1, 2, 3], logprob=-1.0, rewards={}, reward_total=0.0,
                              finish_reason="eos", prompt_tokens=7, stats=SearchStats())
    assert result.usage == Usage(prompt_tokens=7, completion_tokens=3)
    assert result.usage.model_dump() == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    assert sum([result.usage, result.usage], Usage()).total_tokens == 20
    assert "usage" not in result.model_dump()  # the result's own JSON (CLI --json) is unchanged


def test_call_settings_knows_no_framework_arguments():
    params = DeALParams(max_tokens=5, rewards=[Keywords(["dog"])])
    rewards, settings = call_settings(params, {"top_k": 3, "stop": "."})
    assert settings == {"max_new_tokens": 5, "top_k": 3, "stop": "."}  # unset fields: DeALConfig decides
    assert rewards.labels == ["keywords"]
    assert call_settings(params, {"rewards": []})[0].terms == []  # an empty per-call list means no rewards
    for framework_arg in ("callbacks", "ls_provider", "max_retries", "api_key"):
        with pytest.raises(ConfigError, match="unknown argument"):
            call_settings(params, {framework_arg: None})
    with pytest.raises(ConfigError, match="unknown argument 'max_retries'"):
        DeALParams(max_retries=2)
