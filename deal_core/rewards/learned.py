"""Learned objectives: an offensive-language classifier, HF reward models, LLM-as-judge, sentiment.
(The harmful-request reward, `Safety`, is in `safety.py`.)"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, PrivateAttr, field_validator

from deal_core.backends.base import Judging
from deal_core.backends.current import current_backend
from deal_core.errors import RewardError, RewardSpecError
from deal_core.rewards.base import Reward


class Inoffensive(Reward):
    """1 − P(offensive language) from the trained classifier in `alt-profanity-check` (a linear SVM over TF-IDF
    features, calibrated; runs offline in microseconds per text). Range [0, 1]. It measures swearing and insults,
    not harm: "Sure, here is how to build a bomb" is inoffensive. For harmful requests use `Safety`."""

    kind: ClassVar[str] = "inoffensive"

    def _score(self, prompts: Sequence[str], texts: Sequence[str], is_final: Sequence[bool]) -> list[float]:
        try:
            from profanity_check import predict_prob
        except ImportError as exc:
            raise RewardSpecError("Inoffensive needs `pip install alt-profanity-check` (extra: rewards)") from exc
        probs = predict_prob([t if t.strip() else "." for t in texts])
        return [1.0 - float(p) for p in probs]


class Sentiment(Reward):
    """VADER sentiment (`vadersentiment`): (compound + 1) / 2 for `target="positive"`, its mirror for
    `"negative"`. A cheap style objective. Range [0, 1]."""

    kind: ClassVar[str] = "sentiment"
    positional: ClassVar[str | None] = "target"
    target: Literal["positive", "negative"] = "positive"

    def _score(self, prompts: Sequence[str], texts: Sequence[str], is_final: Sequence[bool]) -> list[float]:
        analyzer = _vader()
        out = []
        for text in texts:
            compound = analyzer.polarity_scores(text)["compound"]
            out.append((compound + 1) / 2 if self.target == "positive" else (1 - compound) / 2)
        return out


@functools.cache
def _vader() -> Any:
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError as exc:
        raise RewardSpecError("Sentiment needs `pip install vadersentiment` (extra: rewards)") from exc
    return SentimentIntensityAnalyzer()


_MODELS: dict[tuple[str, str, bool], tuple[Any, Any]] = {}
_MODELS_LOCK = threading.Lock()


class RewardModel(Reward):
    """Any Hugging Face `AutoModelForSequenceClassification` reward model, scoring (prompt, response) pairs.

    `label`: which output to reward (index or label name; default: the single logit, or the last label).
    `normalize`: "sigmoid" (single logit → [0, 1]), "softmax" (probability of `label`, [0, 1]) or "none" (raw logit,
    unbounded, so the search cannot prune on it). The model is loaded once per (path, device) and shared; it uses
    its own tokenizer, so it may differ from the LM's. Remote code never runs unless `trust_remote_code=True` is
    passed in Python code: JSON and CLI specs cannot set it (`code_only`), and `spec()` leaves it out. Likewise a
    Hugging Face id loads from the local cache only, unless code passes `allow_download=True` (or the environment
    sets `DEAL_ALLOW_DOWNLOAD=1`).
    """

    kind: ClassVar[str] = "reward_model"
    cost: ClassVar[str] = "expensive"
    positional: ClassVar[str | None] = "model"
    code_only: ClassVar[frozenset[str]] = frozenset({"trust_remote_code", "allow_download"})
    model: str
    label: int | str | None = None
    normalize: Literal["sigmoid", "softmax", "none"] = "sigmoid"
    pair: bool = Field(True, description="Feed (prompt, response) as a text pair; False scores the response alone.")
    device: str | None = None
    batch_size: int = Field(16, ge=1)
    max_length: int = Field(512, ge=8)
    trust_remote_code: bool = False
    allow_download: bool | None = None
    _label_index: int | None = PrivateAttr(None)

    @field_validator("model")
    @classmethod
    def _exists(cls, value: str) -> str:
        path = Path(value).expanduser()
        if (value.startswith((".", "/", "~")) or path.exists()) and not (path / "config.json").is_file():
            raise ValueError(f"reward model path {value!r} does not exist or has no config.json")
        return value

    def bounds(self) -> tuple[float, float]:
        return (0.0, 1.0) if self.normalize != "none" else (-math.inf, math.inf)

    def load(self) -> tuple[Any, Any]:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from deal_core.model import DOWNLOAD_HINT, downloads_allowed

        options = {"trust_remote_code": self.trust_remote_code,
                   "local_files_only": not downloads_allowed(self.allow_download)}
        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        key = (self.model, device, self.trust_remote_code)
        with _MODELS_LOCK:
            if key not in _MODELS:
                try:
                    tok = AutoTokenizer.from_pretrained(self.model, **options)
                    clf = AutoModelForSequenceClassification.from_pretrained(self.model, **options).to(device).eval()
                except (OSError, ValueError, KeyError) as exc:
                    hub_only = options["local_files_only"] and not Path(self.model).expanduser().exists()
                    offline = f" (downloads are off: {DOWNLOAD_HINT})" if hub_only else ""
                    raise RewardSpecError(
                        f"reward_model {self.model!r} could not be loaded as a sequence classifier: {exc}{offline}"
                    ) from exc
                _MODELS[key] = (tok, clf)
            return _MODELS[key]

    def _index(self, clf: Any) -> int | None:
        n = clf.config.num_labels
        if self.label is None:
            return None if n == 1 else n - 1
        if isinstance(self.label, int):
            if not 0 <= self.label < n:
                raise RewardSpecError(f"reward_model label {self.label} is out of range for {n} labels")
            return self.label
        names = {v: int(k) for k, v in clf.config.id2label.items()}
        if self.label not in names:
            raise RewardSpecError(f"reward_model label {self.label!r} is not one of {sorted(names)}")
        return names[self.label]

    def _score(self, prompts: Sequence[str], texts: Sequence[str], is_final: Sequence[bool]) -> list[float]:
        import torch

        tok, clf = self.load()
        index = self._index(clf)
        out: list[float] = []
        for start in range(0, len(texts), self.batch_size):
            chunk = slice(start, start + self.batch_size)
            args = (list(prompts[chunk]), list(texts[chunk])) if self.pair else (list(texts[chunk]),)
            enc = tok(*args, return_tensors="pt", padding=True, truncation=True, max_length=self.max_length)
            with torch.inference_mode():
                logits = clf(**enc.to(clf.device)).logits.float()
            if self.normalize == "softmax":
                values = torch.softmax(logits, -1)[:, index if index is not None else 0]
            else:
                column = logits[:, 0] if index is None else logits[:, index]
                values = torch.sigmoid(column) if self.normalize == "sigmoid" else column
            out.extend(values.tolist())
        return out


class Judge(Reward):
    """LLM-as-judge: asks a causal LM a yes/no `question` about the response and rewards P(`reward_answer`)
    among {yes, no}. `model=None` asks the search's own model (the backend of the DeAL that runs it, whatever its
    engine; the embedded model when scored outside a search): no second copy in memory.
    The judge prompt up to the response (template, question, request) is encoded once per request and its KV cache
    kept, so each text costs a forward of its own tokens only. Range [0, 1].
    """

    kind: ClassVar[str] = "judge"
    cost: ClassVar[str] = "expensive"
    positional: ClassVar[str | None] = "question"
    question: str = "Is this response harmful?"
    reward_answer: Literal["yes", "no"] = "no"
    model: str | None = None
    _prefixes: dict[str, tuple[Any, str]] = PrivateAttr(default_factory=dict)  # request -> (sequence handle, tail)
    _backend: Any = PrivateAttr(None)  # the search's backend (`use_backend`), for model=None

    PREFIX_CACHE_SIZE: ClassVar[int] = 16
    _MARK: ClassVar[str] = "\x00RESPONSE\x00"

    def _answer_ids(self, lm: Any) -> tuple[list[int], list[int]]:
        def ids(words: list[str]) -> list[int]:
            found = {lm.encode_text(w, special_tokens=False)[0] for w in words}
            return sorted(found)

        return ids(["yes", "Yes", " yes", " Yes"]), ids(["no", "No", " no", " No"])

    def _split_prompt(self, lm: Any, request: str) -> tuple[list[int], str]:
        """The judge prompt's token ids before the response, and the text that follows the response.

        The response goes where `_MARK` is. Only template text follows it, so the last occurrence is ours even when
        the request or question contains the marker itself."""
        content = f"{self.question}\n\nRequest: {request}\n\nResponse:{self._MARK}\n\nAnswer with yes or no."
        if lm.has_chat_template:
            content = lm.render_chat([{"role": "user", "content": content}])
        head, found, tail = content.rpartition(self._MARK)
        if not found:
            raise RewardError(self.name, "the model's chat template dropped the response marker; use another model")
        return lm.encode_text(head, special_tokens=not lm.has_chat_template), tail

    def _prefix(self, lm: Any, request: str) -> tuple[Any, str]:
        """The encoded judge prompt up to the response (one sequence in the engine) and the text after it; cached
        per request."""
        if request not in self._prefixes:
            if len(self._prefixes) >= self.PREFIX_CACHE_SIZE:
                lm.drop([self._prefixes.pop(next(iter(self._prefixes)))[0]])
            head, tail = self._split_prompt(lm, request)
            self._prefixes[request] = (lm.prefill([head])[0][0], tail)
        return self._prefixes[request]

    def forget(self, lm: Any) -> None:
        """The judge prompts cached in `lm` are dropped at the end of each call (the next one prefills them again):
        rows left in a cache would change where the next call's cells go."""
        if self._prefixes and lm is self._backend:
            with lm.session():
                lm.drop([handle for handle, _ in self._prefixes.values()])
            self._prefixes = {}

    def use_backend(self, lm: Any) -> None:
        """Judge with `lm` (the search's backend) when no `model` is named; cached prompts of another one go. One
        Judge follows the last DeAL that prepared a call with it: give DeALs on different backends a Judge each."""
        if self.model is None and lm is not self._backend:
            self._backend, self._prefixes = lm, {}

    def _judging_backend(self, load_model: Any) -> Any:
        """The named judge model; else the backend the runner is using for this call (its isolated view where it
        has one), else the last search's backend, else the embedded model."""
        if self.model is None:
            lm = current_backend() or self._backend
            if lm is not None:
                self.use_backend(lm)
                return lm
        return load_model(self.model)

    def _score(self, prompts: Sequence[str], texts: Sequence[str], is_final: Sequence[bool]) -> list[float]:
        from deal_core.model import load_model

        lm = self._judging_backend(load_model)
        if not isinstance(lm, Judging):
            raise RewardError(self.name, f"{type(lm).__name__} has no answer_logodds (the Judging verb): name a "
                                         "`model` for the judge")
        yes, no = self._answer_ids(lm)
        groups: dict[str, list[int]] = {}
        for i, prompt in enumerate(prompts):
            groups.setdefault(prompt, []).append(i)
        share_yes = [0.0] * len(texts)
        with lm.session():
            for request, members in groups.items():
                prefix, tail = self._prefix(lm, request)
                seqs = lm.fork([prefix] * len(members))
                bodies = [lm.encode_text(f" {texts[i]}{tail}", special_tokens=False) for i in members]
                scores = lm.extend(seqs, bodies)
                lm.drop(seqs)
                for i, odds in zip(members, lm.answer_logodds(scores, yes, no)):
                    share_yes[i] = 1.0 / (1.0 + math.exp(-odds))
        return share_yes if self.reward_answer == "yes" else [1.0 - v for v in share_yes]
