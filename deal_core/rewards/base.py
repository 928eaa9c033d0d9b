"""The reward protocol: batched scoring of (prompt, text, is_final) triples, weights, and `+` / `*` composition."""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from deal_core.errors import RewardError, RewardSpecError, short_repr
from deal_core.rewards.outputs import text_of


class Reward(BaseModel):
    """A batched alignment objective.

    Subclasses implement `_score(prompts, texts, is_final) -> floats`. `prompts[i]` is the user's request,
    `texts[i]` the response text to judge (a partial response extended by lookahead unless `is_final[i]`).
    They declare `bounds()` so the search can prove that a candidate cannot win and skip its lookahead; a reward
    with unknown bounds returns `(-inf, inf)`. A hard constraint may return `-inf` to veto a text.
    Every call says which texts are final (`is_final`): rewards that judge only whole responses (minimum length,
    JSON validity) score partial texts by what can still be fixed, and finished texts strictly.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ClassVar[str] = ""
    positional: ClassVar[str | None] = None  # the field a single positional argument fills: Keywords(["a", "b"])
    cost: ClassVar[str] = "cheap"  # "expensive": the search scores it only on candidates the cheap ones keep
    # False where the caller's input (a regex, a JSON Schema) sets the scoring cost: under continuous batching such a
    # call gets a search of its own, so its reward time is charged to it alone and never stalls a shared step
    bounded_cost: ClassVar[bool] = True
    # True: `_score` also takes `logprobs`, each text's mean token log-probability (the search passes its own)
    reads_logprobs: ClassVar[bool] = False
    optional_proposals: ClassVar[bool] = False  # True: an engine that cannot complete a proposal just skips them
    # Fields only Python code may set: a JSON or CLI spec naming one is refused, and `spec()` leaves them out.
    code_only: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, *args: Any, **data: Any) -> None:
        if args:
            if len(args) > 1 or self.positional is None or self.positional in data:
                raise TypeError(f"{type(self).__name__} takes keyword arguments"
                                + (f" (one positional: {self.positional})" if self.positional else ""))
            data[self.positional] = args[0]
        super().__init__(**data)

    @property
    def name(self) -> str:
        return self.kind or type(self).__name__.lower()

    def bounds(self) -> tuple[float, float]:
        return (0.0, 1.0)

    @property
    def can_veto(self) -> bool:
        return False

    @property
    def is_expensive(self) -> bool:
        return self.cost == "expensive"

    @property
    def uses_logprobs(self) -> bool:
        return self.reads_logprobs

    def upper_bound(self, logprob: float, tokens: int, more: int) -> float:
        """The most this reward can give an answer whose first `tokens` tokens have log-probability `logprob` in
        all, once at most `more` tokens follow. The search prunes candidates with it before rolling them out, so it
        must hold for every continuation; the default is `bounds()[1]`. (`Fluency` knows better.)"""
        return self.bounds()[1]

    @property
    def tightens_bound(self) -> bool:
        """Whether `upper_bound` can be below `bounds()[1]` (the search only asks such rewards)."""
        return type(self).upper_bound is not Reward.upper_bound

    def use_backend(self, lm: Any) -> None:
        """Called with the search's backend before a call runs: a reward that asks a model (`Judge`) may use it."""

    def forget(self, lm: Any) -> None:
        """Called when a call's model work in `lm` ends: drop what this reward keeps in `lm`'s cache (`Judge`'s
        prompt rows), so the next call finds the cache as if this one never ran (engines whose rows depend on their
        neighbours' cells, such as llama.cpp, give the same bits only then)."""

    def proposals(self, request: str) -> list[str]:
        """Answer openings this reward offers for `request` (none by default). Each competes with the search's
        answer by the same objective, its log-probability the model's own (deal_core/proposals.py)."""
        return []

    def requires_proposal(self, request: str, answer: str) -> bool:
        """True: the search's `answer` lacks what this reward's proposals state, so only they compete."""
        return False

    def keeps_answer(self, request: str, answer: str) -> bool:
        """True withdraws this reward's proposals, given the search's `answer` (Safety: it passes a harm check)."""
        return False

    @abstractmethod
    def _score(self, prompts: Sequence[str], texts: Sequence[str], is_final: Sequence[bool]) -> Sequence[float]:
        ...

    def score(
        self, prompts: Sequence[str] | str, texts: Sequence[str] | str, is_final: Sequence[bool] | bool = True,
        logprobs: Sequence[float] | None = None,
    ) -> list[float]:
        """Score texts, checking that the reward returned one finite float per text. `logprobs`: each text's mean
        token log-probability under the model, for rewards that use it (`uses_logprobs`)."""
        if isinstance(texts, str):
            texts = [texts]
        if isinstance(prompts, str):
            prompts = [prompts] * len(texts)
        if isinstance(is_final, bool):
            is_final = [is_final] * len(texts)
        if not (len(prompts) == len(texts) == len(is_final)):
            raise ValueError(
                f"score() needs as many prompts and is_final flags as texts, got {len(prompts)}, "
                f"{len(is_final)} and {len(texts)}"
            )
        if not texts:
            return []
        extra = {}
        if self.uses_logprobs:
            if logprobs is None or len(logprobs) != len(texts):
                raise RewardError(self.name, "needs each text's mean token log-probability: it scores answers "
                                  "inside DeAL's search, or pass score(..., logprobs=[one float per text])")
            extra = {"logprobs": [float(v) for v in logprobs]}
        try:
            raw = self._score(list(prompts), list(texts), list(is_final), **extra)
            values = [float(v) for v in raw]
        except RewardError:
            raise
        except Exception as exc:  # the user's code: name it and keep the cause
            raise RewardError(self.name, f"raised {type(exc).__name__}: {exc}") from exc
        if len(values) != len(texts):
            raise RewardError(self.name, f"returned {len(values)} scores for {len(texts)} texts")
        low, high = self.bounds()
        for value, text in zip(values, texts):
            if math.isnan(value) or value == math.inf or (value == -math.inf and not self.can_veto):
                raise RewardError(
                    self.name, f"returned {value} for text {text[:60]!r}; rewards must return finite floats"
                )
            if value != -math.inf and not low - _slack(low) <= value <= high + _slack(high):
                raise RewardError(
                    self.name, f"returned {value:g} for text {text[:60]!r}, outside its declared bounds "
                    f"[{low:g}, {high:g}]; the search prunes by these bounds, so fix the reward or widen them"
                )
        return values

    def __call__(self, output: Any, prompt: str = "") -> Score:
        """Score one finished output: a string, or any output type registered with `text_of` (the wrapper
        packages register their frameworks' messages: `prompt | llm | Safety()` works in LangChain)."""
        return as_reward_sum(self)(output, prompt)

    # -- composition ------------------------------------------------------------------------------------------
    def __mul__(self, weight: float) -> RewardSum:
        return RewardSum(terms=[WeightedReward(weight=finite_weight(weight), reward=self)])

    __rmul__ = __mul__

    def __add__(self, other: Reward) -> RewardSum:
        return as_reward_sum(self) + other

    def __radd__(self, other: Any) -> RewardSum:
        if other == 0:  # lets sum([...]) work
            return as_reward_sum(self)
        return NotImplemented

    def spec(self) -> dict[str, Any]:
        """A JSON-serialisable description: `{"name": kind, **fields}`; `reward_from_spec` reads it back."""
        return {"name": self.kind, **self.model_dump(mode="json", exclude=set(self.code_only))}


def _slack(bound: float) -> float:
    """Rounding allowed past a declared bound."""
    return 1e-6 * max(1.0, abs(bound))


def finite_weight(weight: Any, what: str = "reward weight") -> float:
    """`weight` as a float, or RewardSpecError if it is not a finite number (ints too big for a float included)."""
    if not isinstance(weight, bool) and isinstance(weight, (int, float)):
        try:
            value = float(weight)
        except OverflowError:
            value = math.inf
        if math.isfinite(value):
            return value
    raise RewardSpecError(f"{what} must be a finite number, got {short_repr(weight)}")


class WeightedReward(BaseModel):
    model_config = ConfigDict(frozen=True)
    weight: float = Field(allow_inf_nan=False)
    reward: Reward


class RewardScores(BaseModel):
    """Per-text totals and each component's raw value (before weights), keyed by component label."""

    total: list[float]
    components: dict[str, list[float]]

    def row(self, i: int) -> dict[str, float]:
        return {label: values[i] for label, values in self.components.items()}


class Score(BaseModel):
    """One text's weighted total and each component's raw value."""

    text: str
    total: float
    components: dict[str, float]

    def __float__(self) -> float:
        return self.total


class RewardSum(BaseModel):
    """`w1·R1 + w2·R2 + …` — what the search maximises (times λ)."""

    model_config = ConfigDict(frozen=True)
    terms: list[WeightedReward] = Field(default_factory=list)

    def __add__(self, other: Reward | RewardSum) -> RewardSum:
        return RewardSum(terms=[*self.terms, *as_reward_sum(other).terms])

    __radd__ = __add__

    def __mul__(self, weight: float) -> RewardSum:
        w = finite_weight(weight)
        return RewardSum(terms=[WeightedReward(weight=t.weight * w, reward=t.reward) for t in self.terms])

    __rmul__ = __mul__

    def __bool__(self) -> bool:
        return bool(self.terms)

    @property
    def labels(self) -> list[str]:
        labels, seen = [], {}
        for term in self.terms:
            base = term.reward.name
            seen[base] = seen.get(base, 0) + 1
            labels.append(base if seen[base] == 1 else f"{base}#{seen[base]}")
        return labels

    def bounds(self) -> tuple[float, float]:
        low = high = 0.0
        for t in self.terms:
            lo, hi = t.reward.bounds()
            low += t.weight * (lo if t.weight >= 0 else hi)
            high += t.weight * (hi if t.weight >= 0 else lo)
        return (low, high) if not math.isnan(low + high) else (-math.inf, math.inf)

    @property
    def tightens_bound(self) -> bool:
        return any(t.weight > 0 and t.reward.tightens_bound for t in self.terms)

    @property
    def bounded_cost(self) -> bool:
        return all(t.reward.bounded_cost for t in self.terms)

    def upper_bound(self, logprob: float, tokens: int, more: int) -> float:
        """Σ wᵢ · (Rᵢ's upper bound for this answer so far); terms with a negative weight count their lower bound."""
        total = 0.0
        for t in self.terms:
            low, high = t.reward.bounds()
            total += t.weight * (min(high, t.reward.upper_bound(logprob, tokens, more)) if t.weight > 0 else
                                 low if t.weight < 0 else 0.0)
        return total

    def evaluate(
        self, prompts: Sequence[str], texts: Sequence[str], is_final: Sequence[bool] | bool = True,
        logprobs: Sequence[float] | None = None,
    ) -> RewardScores:
        if isinstance(is_final, bool):
            is_final = [is_final] * len(texts)
        components: dict[str, list[float]] = {}
        total = [0.0] * len(texts)
        for label, term in zip(self.labels, self.terms):
            values = term.reward.score(prompts, texts, is_final, logprobs)
            components[label] = values
            if term.weight:
                total = [acc + term.weight * v for acc, v in zip(total, values)]
        return RewardScores(total=total, components=components)

    def proposals(self, request: str, answer: str | None = None, required_only: bool = False) -> list[str]:
        """The openings the positively weighted terms offer for `request`, each once (less those keeping `answer`;
        `required_only`: less those of rewards whose proposals are optional)."""
        offering = [t.reward for t in self.terms if t.weight > 0
                    and (answer is None or not t.reward.keeps_answer(request, answer))
                    and not (required_only and t.reward.optional_proposals)]
        return list(dict.fromkeys(p for r in offering for p in r.proposals(request)))

    def requires_proposal(self, request: str, answer: str) -> bool:
        """A positively weighted term requires a proposed answer instead of `answer` (`Reward.requires_proposal`)."""
        return any(t.weight > 0 and t.reward.requires_proposal(request, answer) for t in self.terms)

    def spec(self) -> list[dict[str, Any]]:
        return [{**t.reward.spec(), "weight": t.weight} for t in self.terms]

    def __call__(self, output: Any, prompt: str = "") -> Score:
        text = text_of(output)
        scores = self.evaluate([prompt], [text], True)
        return Score(text=text, total=scores.total[0], components=scores.row(0))


RewardLike = Reward | RewardSum | Sequence[Reward] | None


def as_reward_sum(rewards: RewardLike) -> RewardSum:
    """Normalise None, one reward, a list of rewards (weight 1 each) or a sum into a `RewardSum`."""
    if rewards is None:
        return RewardSum()
    if isinstance(rewards, RewardSum):
        return rewards
    if isinstance(rewards, Reward):
        return RewardSum(terms=[WeightedReward(weight=1.0, reward=rewards)])
    if isinstance(rewards, (str, bytes, Mapping, type)) or not isinstance(rewards, Iterable):
        raise RewardSpecError(_not_a_reward(rewards))
    terms: list[WeightedReward] = []
    for item in rewards:
        if isinstance(item, (Reward, RewardSum)):
            terms.extend(as_reward_sum(item).terms)
        else:
            raise RewardSpecError(_not_a_reward(item))
    return RewardSum(terms=terms)


def _not_a_reward(value: Any) -> str:
    """What to pass instead of `value` as `rewards=`."""
    if isinstance(value, type) and issubclass(value, Reward):
        hint = f"the class {value.__name__}: instantiate it, e.g. {value.__name__}(...)"
    elif isinstance(value, Mapping):
        hint = "a dict: build rewards from JSON specs with rewards_from_json([...])"
    elif isinstance(value, str):
        hint = f"the string {short_repr(value)}: build rewards from CLI specs with rewards_from_cli([...])"
    elif callable(value):
        name = getattr(value, "__name__", "fn")
        hint = f"the function {name}: wrap it, e.g. FunctionReward({name}, bounds=(low, high))"
    else:
        hint = f"{type(value).__name__} {short_repr(value)}"
    return f"rewards must be a Reward, a sum of rewards, a list of them or None; got {hint}"
