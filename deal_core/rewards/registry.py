"""The reward registry: which names a spec may use, and how CLI text and JSON specs become rewards.

    keywords=dog,park:0.3              (CLI: NAME[=ARG][:WEIGHT])
    {"name": "keywords", "keywords": ["dog", "park"], "weight": 0.3}     (JSON, what `Reward.spec()` writes)

The registry is explicit: every built-in reward is listed here (by import path) with its CLI parser, so a name
works whatever was imported before. Only registered classes can be named — a spec never points at arbitrary
Python — and a spec cannot set a reward's `code_only` fields (e.g. `RewardModel.trust_remote_code`).
Register your own with `register_reward(MyReward, cli=...)`.
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from deal_core.errors import RewardSpecError, describe_validation_error, short_repr
from deal_core.rewards.base import Reward, RewardSum, WeightedReward, finite_weight

CliParser = Callable[[str | None], dict[str, Any]]  # the text after `name=` -> constructor fields


def no_argument(name: str) -> CliParser:
    def parse(arg: str | None) -> dict[str, Any]:
        if arg:
            raise ValueError(f"{name} takes no argument, got {arg!r}")
        return {}

    return parse


def _is_file(text: str) -> bool:
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # a name too long, or with a NUL, is no file
        return False


def _length(arg: str | None) -> dict[str, Any]:
    """`min=5,max=20` or `target=12`."""
    names = {"min": "min_words", "max": "max_words", "target": "target_words"}
    settings = {}
    for part in (arg or "").split(","):
        key, _, value = part.partition("=")
        if key.strip() not in names or not value.strip().isdigit():
            raise ValueError(f"length takes min=N,max=N,target=N; got {part!r}")
        settings[names[key.strip()]] = int(value)
    return settings


def _blocklist(arg: str | None) -> dict[str, Any]:
    """`blocklist=word1,word2`, or `blocklist=hard:word1,word2` for a hard constraint."""
    text = arg or ""
    return {"terms": text.removeprefix("hard:").split(","), "hard": text.startswith("hard:")}


def _json_schema(arg: str | None) -> dict[str, Any]:
    """`json_schema=FILE.json` or an inline schema."""
    text = arg or ""
    if text and not text.lstrip().startswith("{") and _is_file(text):
        text = Path(text).read_text()
    try:
        return {"json_schema": json.loads(text)}
    except json.JSONDecodeError as exc:
        raise ValueError(f"json_schema needs a JSON object or a file holding one: {exc}") from None
    except RecursionError:
        raise ValueError("json_schema is nested too deeply to read; flatten it") from None


def _grounding(arg: str | None) -> dict[str, Any]:
    """`grounding=FILE`: one passage per paragraph (blank-line separated)."""
    if not arg or not _is_file(arg):
        raise ValueError("grounding needs a file of context passages: grounding=PATH")
    return {"context": [p for p in Path(arg).read_text().split("\n\n") if p.strip()]}


def _safety(arg: str | None) -> dict[str, Any]:
    """`safety` or `safety=THRESHOLD` (the prompt-harm probability below which a request counts as benign)."""
    if not arg:
        return {}
    try:
        return {"harm_threshold": float(arg)}
    except ValueError:
        raise ValueError(f"safety takes a harm threshold in [0, 1], e.g. safety=0.5; got {arg!r}") from None


class RewardRegistry(Mapping[str, type[Reward]]):
    """name -> reward class (imported on first use), with each name's CLI parser."""

    def __init__(self) -> None:
        self._targets: dict[str, str | type[Reward]] = {}
        self._cli: dict[str, CliParser] = {}

    def register(self, name: str, target: str | type[Reward], cli: CliParser | None = None) -> None:
        """`target` is a class or `"module:Class"`; `cli` turns the text after `name=` into fields."""
        key = name.strip().lower()
        if not key:
            raise ValueError("a registered reward needs a non-empty name")
        self._targets[key] = target
        self._cli[key] = cli or no_argument(key)

    def __getitem__(self, name: str) -> type[Reward]:
        key = name.strip().lower() if isinstance(name, str) else name
        if key not in self._targets:
            raise RewardSpecError(f"unknown reward {short_repr(name)}; known rewards: {', '.join(self)}")
        target = self._targets[key]
        if isinstance(target, str):
            module, _, attr = target.partition(":")
            target = self._targets[key] = getattr(importlib.import_module(module), attr)
        return target

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.strip().lower() in self._targets

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._targets))

    def __len__(self) -> int:
        return len(self._targets)

    def from_cli(self, name: str, arg: str | None) -> Reward:
        cls = self[name]
        return cls(**self._cli[name.strip().lower()](arg))


REGISTRY = RewardRegistry()
for _name, _target, _cli in [
    ("keywords", "deal_core.rewards.keywords:Keywords", lambda arg: {"keywords": (arg or "").split(",")}),
    ("length", "deal_core.rewards.length:Length", _length),
    ("blocklist", "deal_core.rewards.blocklist:Blocklist", _blocklist),
    ("regex", "deal_core.rewards.formats:Regex", lambda arg: {"pattern": arg or ""}),
    ("json_schema", "deal_core.rewards.formats:JsonSchema", _json_schema),
    ("grounding", "deal_core.rewards.grounding:Grounding", _grounding),
    ("safety", "deal_core.rewards.safety:Safety", _safety),
    ("harmless", "deal_core.rewards.safety:Safety", _safety),  # until 0.x: the profanity filter, now `inoffensive`
    ("inoffensive", "deal_core.rewards.learned:Inoffensive", None),
    ("offensive", "deal_core.rewards.learned:Inoffensive", None),
    ("sentiment", "deal_core.rewards.learned:Sentiment", lambda arg: {"target": arg or "positive"}),
    ("reward_model", "deal_core.rewards.learned:RewardModel", lambda arg: {"model": arg or ""}),
    ("judge", "deal_core.rewards.learned:Judge", lambda arg: {"question": arg} if arg else {}),
    ("tool_arguments", "deal_core.rewards.tools:ToolArguments", None),
    ("fluency", "deal_core.rewards.fluency:Fluency", None),
]:
    REGISTRY.register(_name, _target, _cli)


def register_reward(cls: type[Reward], cli: CliParser | None = None) -> type[Reward]:
    """Make `cls` nameable in specs as `cls.kind` (a class decorator too). Without `cli` it takes no CLI argument."""
    if not (isinstance(cls, type) and issubclass(cls, Reward)) or not cls.kind:
        raise RewardSpecError(f"register_reward needs a Reward subclass with a `kind`, got {short_repr(cls)}")
    if cls.kind in REGISTRY and REGISTRY[cls.kind] is not cls:
        raise RewardSpecError(f"reward name {cls.kind!r} is taken by {REGISTRY[cls.kind].__name__}: choose another kind")
    REGISTRY.register(cls.kind, cls, cli)
    return cls


def parse_reward_spec(spec: str) -> WeightedReward:
    """`name`, `name:weight`, `name=arg`, `name=arg:weight`; e.g. `safety:0.7`, `keywords=dog,park:0.3`.

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
    REGISTRY[name]  # an unknown name fails here, with the list of known ones
    try:
        reward = REGISTRY.from_cli(name, arg.strip() or None)
    except ValidationError as exc:
        raise RewardSpecError(f"reward spec {spec!r}: {describe_validation_error(exc)}") from None
    except (ValueError, TypeError) as exc:
        raise RewardSpecError(f"reward spec {spec!r}: {exc}") from None
    return WeightedReward(weight=weight, reward=reward)


def rewards_from_cli(specs: Iterable[str]) -> RewardSum:
    return RewardSum(terms=[parse_reward_spec(s) for s in _spec_list(specs, "rewards_from_cli", "'safety:0.7'")])


def reward_from_spec(spec: Mapping[str, Any], models: Mapping[str, str] | None = None) -> WeightedReward:
    """Inverse of `Reward.spec()` plus an optional weight: `{"name": "keywords", "keywords": [...], "weight": 2}`.

    `models` (a server's untrusted requests): a reward's `model` must be one of these names, which map to the
    paths the operator chose; a spec never names a path or hub id itself."""
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
        raise RewardSpecError(f"a reward spec is a dict with a 'name' string, got {short_repr(spec)}")
    fields = {k: v for k, v in spec.items() if k not in ("name", "weight")}
    weight = finite_weight(spec.get("weight", 1.0), f"reward {short_repr(spec['name'])}: weight")
    cls = REGISTRY[spec["name"]]
    refused = sorted(set(fields) & cls.code_only)
    if refused:
        raise RewardSpecError(
            f"reward {spec['name']!r}: {', '.join(refused)} can only be set in Python code "
            f"(e.g. {cls.__name__}(..., {refused[0]}=True)), never from a spec"
        )
    if models is not None and "model" in cls.model_fields:
        fields = _allowed_model(spec["name"], fields, models, cls.model_fields["model"].is_required())
    try:
        return WeightedReward(weight=weight, reward=cls(**fields))
    except ValidationError as exc:
        raise RewardSpecError(f"reward {spec['name']!r}: {describe_validation_error(exc)}") from None
    except (ValueError, TypeError) as exc:
        raise RewardSpecError(f"reward {spec['name']!r}: {exc}") from None


def rewards_from_json(specs: Iterable[Mapping[str, Any]], models: Mapping[str, str] | None = None) -> RewardSum:
    """Rewards from JSON specs; `models`: see `reward_from_spec` (None: trusted specs, any model path)."""
    return RewardSum(terms=[reward_from_spec(s, models)
                            for s in _spec_list(specs, "rewards_from_json", '{"name": ...}')])


def _allowed_model(name: str, fields: dict[str, Any], models: Mapping[str, str], required: bool) -> dict[str, Any]:
    value = fields.get("model")
    if value is None and not required:
        return fields
    offered = f"one of {sorted(models)}" if models else "none (the operator adds them: deal serve --reward-model " \
                                                         "NAME=PATH)"
    if not isinstance(value, str) or value not in models:
        raise RewardSpecError(f"reward {name!r}: model {short_repr(value)} is not a model this server offers; "
                              f"name one it offers: {offered}")
    return {**fields, "model": models[value]}


def _spec_list(specs: Any, caller: str, example: str) -> list[Any]:
    if not isinstance(specs, (list, tuple)):
        raise RewardSpecError(f"{caller} needs a list of reward specs, e.g. [{example}], got {short_repr(specs)}")
    return list(specs)
