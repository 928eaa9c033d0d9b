"""Building rewards from names: CLI specs (`keywords=a,b,c:0.3`) and JSON specs (`{"name": ..., "weight": ...}`).

Only classes registered through `Reward.kind` can be named, so a spec can never point at arbitrary Python code,
and a spec cannot set a reward's `code_only` fields (e.g. `RewardModel.trust_remote_code`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from deal_core.errors import RewardSpecError, describe_validation_error
from deal_core.rewards.base import REGISTRY, Reward, RewardSum, WeightedReward


def _reward_class(name: str) -> type[Reward]:
    key = name.strip().lower()
    if key not in REGISTRY:
        known = ", ".join(sorted(REGISTRY))
        raise RewardSpecError(f"unknown reward {name!r}; known rewards: {known}")
    return REGISTRY[key]


def _weight(text: str, spec: str) -> float:
    try:
        weight = float(text)
    except ValueError:
        raise RewardSpecError(f"reward spec {spec!r}: weight {text!r} is not a number") from None
    if not math.isfinite(weight):
        raise RewardSpecError(f"reward spec {spec!r}: weight must be finite")
    return weight


def parse_reward_spec(spec: str) -> WeightedReward:
    """`name`, `name:weight`, `name=arg`, `name=arg:weight`; e.g. `harmless:0.7`, `keywords=dog,park:0.3`."""
    body, weight = spec.strip(), 1.0
    head, sep, last = body.rpartition(":")
    if sep:
        try:
            weight, body = _weight(last, spec), head
        except RewardSpecError:
            if "=" not in head and "=" not in last:  # 'name:junk' is a bad weight, not part of an argument
                raise
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
    return RewardSum(terms=[parse_reward_spec(s) for s in specs])


def reward_from_spec(spec: Mapping[str, Any]) -> WeightedReward:
    """Inverse of `Reward.spec()` plus an optional weight: `{"name": "keywords", "keywords": [...], "weight": 2}`."""
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise RewardSpecError(f"a reward spec needs a 'name' field, got {spec!r}")
    fields = {k: v for k, v in spec.items() if k not in ("name", "weight")}
    weight = spec.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
        raise RewardSpecError(f"reward {spec['name']!r}: weight must be a finite number, got {weight!r}")
    cls = _reward_class(str(spec["name"]))
    refused = sorted(set(fields) & cls.code_only)
    if refused:
        raise RewardSpecError(
            f"reward {spec['name']!r}: {', '.join(refused)} can only be set in Python code "
            f"(e.g. {cls.__name__}(..., {refused[0]}=True)), never from a spec"
        )
    try:
        return WeightedReward(weight=float(weight), reward=cls(**fields))
    except ValidationError as exc:
        raise RewardSpecError(f"reward {spec['name']!r}: {describe_validation_error(exc)}") from None
    except (ValueError, TypeError) as exc:
        raise RewardSpecError(f"reward {spec['name']!r}: {exc}") from None


def rewards_from_json(specs: Iterable[Mapping[str, Any]]) -> RewardSum:
    return RewardSum(terms=[reward_from_spec(s) for s in specs])
