"""Building rewards from names: CLI specs (`keywords=a,b,c:0.3`) and JSON specs (`{"name": ..., "weight": ...}`).

Only classes registered through `Reward.kind` can be named, so a spec can never point at arbitrary Python code,
and a spec cannot set a reward's `code_only` fields (e.g. `RewardModel.trust_remote_code`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from deal_core.errors import RewardSpecError, describe_validation_error, short_repr
from deal_core.rewards.base import REGISTRY, Reward, RewardSum, WeightedReward, finite_weight


def _reward_class(name: str) -> type[Reward]:
    key = name.strip().lower()
    if key not in REGISTRY:
        known = ", ".join(sorted(REGISTRY))
        raise RewardSpecError(f"unknown reward {name!r}; known rewards: {known}")
    return REGISTRY[key]


def parse_reward_spec(spec: str) -> WeightedReward:
    """`name`, `name:weight`, `name=arg`, `name=arg:weight`; e.g. `harmless:0.7`, `keywords=dog,park:0.3`.

    A trailing `:<number>` is always the weight, and must be finite (`:nan`, `:inf`, `:1e400` are errors); any other
    trailing `:text` after `name=` belongs to the argument (`blocklist=hard:word`)."""
    if not isinstance(spec, str):
        raise RewardSpecError(f"a CLI reward spec is a string like 'keywords=dog,park:0.3', got {short_repr(spec)}")
    body, weight = spec.strip(), 1.0
    head, sep, last = body.rpartition(":")
    if sep:
        try:
            number = float(last)
        except ValueError:
            if "=" not in head and "=" not in last:  # 'name:junk' is a bad weight, not part of an argument
                raise RewardSpecError(f"reward spec {spec!r}: weight {last!r} is not a number") from None
        else:
            if not math.isfinite(number):
                raise RewardSpecError(f"reward spec {spec!r}: weight {last!r} is not a finite number; "
                                      "a trailing :<number> is the weight, e.g. :0.5")
            weight, body = number, head
    name, _, arg = body.partition("=")
    cls = _reward_class(name)
    try:
        reward = cls.from_cli(arg.strip() or None)
    except ValidationError as exc:
        raise RewardSpecError(f"reward spec {spec!r}: {describe_validation_error(exc)}") from None
    except (ValueError, TypeError) as exc:
        raise RewardSpecError(f"reward spec {spec!r}: {exc}") from None
    return WeightedReward(weight=weight, reward=reward)


def rewards_from_cli(specs: Iterable[str]) -> RewardSum:
    return RewardSum(terms=[parse_reward_spec(s) for s in _spec_list(specs, "rewards_from_cli", "'harmless:0.7'")])


def reward_from_spec(spec: Mapping[str, Any]) -> WeightedReward:
    """Inverse of `Reward.spec()` plus an optional weight: `{"name": "keywords", "keywords": [...], "weight": 2}`."""
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
        raise RewardSpecError(f"a reward spec is a dict with a 'name' string, got {short_repr(spec)}")
    fields = {k: v for k, v in spec.items() if k not in ("name", "weight")}
    weight = finite_weight(spec.get("weight", 1.0), f"reward {short_repr(spec['name'])}: weight")
    cls = _reward_class(spec["name"])
    refused = sorted(set(fields) & cls.code_only)
    if refused:
        raise RewardSpecError(
            f"reward {spec['name']!r}: {', '.join(refused)} can only be set in Python code "
            f"(e.g. {cls.__name__}(..., {refused[0]}=True)), never from a spec"
        )
    try:
        return WeightedReward(weight=weight, reward=cls(**fields))
    except ValidationError as exc:
        raise RewardSpecError(f"reward {spec['name']!r}: {describe_validation_error(exc)}") from None
    except (ValueError, TypeError) as exc:
        raise RewardSpecError(f"reward {spec['name']!r}: {exc}") from None


def rewards_from_json(specs: Iterable[Mapping[str, Any]]) -> RewardSum:
    return RewardSum(terms=[reward_from_spec(s) for s in _spec_list(specs, "rewards_from_json", '{"name": ...}')])


def _spec_list(specs: Any, caller: str, example: str) -> list[Any]:
    if not isinstance(specs, (list, tuple)):
        raise RewardSpecError(f"{caller} needs a list of reward specs, e.g. [{example}], got {short_repr(specs)}")
    return list(specs)
