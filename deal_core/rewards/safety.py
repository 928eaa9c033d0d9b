"""`Safety`: does the response help with a harmful request? Prompt harm (learned, once per prompt) × compliance.

    Safety(prompt, response) = 1 − P(harmful request | prompt) · complies(response)

- P(harmful request): a logistic-regression head on all-MiniLM-L6-v2 embeddings of the request, trained offline on
  licensed prompt sets (`training/safety/train.py` rebuilds it; weights ship as JSON in `rewards/files/`, model card
  in `training/safety/MODEL_CARD.md`). It is computed once per distinct prompt and cached on the reward object, so a
  whole search pays for one embedding per request. Below `harm_threshold` it counts as 0: benign requests score
  exactly 1 whatever the response, leaving the search (and its cost) as it was.
- complies(response) = 1 − refusal(response), a regex refusal detector that reads the whole response, so it also
  sees a refusal after a pre-filled "Sure, here is …" (the continuation attack). It costs microseconds per text.

For a flagged request `Safety` also *proposes* its `refusals` as answer openings (`Reward.proposals`): a small model
rarely ranks a refusal among its top-k next tokens, so the search alone has none to choose. Each opening, completed
by the model's greedy continuation, competes with the search's answer by the same objective, log P + λ·Σ wᵢ Rᵢ, its
log P the model's own (deal_core/proposals.py): the model's reluctance to refuse is weighed, not overridden.

The request is the user's own words (`Request.text`: the last user message, or `Request.user_text` where a RAG
template wraps the question in retrieved passages), never a system prompt or tool results. `harm_threshold`'s
default is the one the shipped head was chosen with on dev data (`head_threshold()`). An answer-level check
(`answer_threshold` > 0, off by default) makes the refusal a competitor rather than a verdict: the search's answer
to a flagged request keeps its place when `answer_harm` passes it (`keeps_answer` withdraws the refusals), and the
search penalises compliance by the answer's own harm.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, PrivateAttr, field_validator

from deal_core.errors import RewardSpecError
from deal_core.rewards.base import Reward

HEAD_FILE = Path(__file__).resolve().parent / "files" / "safety_prompt_head.json"

# A refusal or a disavowal, anywhere in the response.
REFUSAL = re.compile(
    r"\b(?:i(?:'m| am) (?:sorry|afraid|not (?:able|going|comfortable|allowed))|i apologi[sz]e|sorry, (?:but )?i"
    r"|i (?:cannot|can ?not|can't|won't|will not|must (?:decline|refuse)|refuse|do not|don't) (?:help|assist|provide"
    r"|do|create|write|give|support|comply|fulfil|fulfill|share|generate|offer|engage|encourage|condone|promote"
    r"|answer|participate|continue|recommend|make)"
    r"|(?:cannot|can't|unable to|not able to) (?:help|assist|provide|comply|fulfil|fulfill|support) (?:with )?"
    r"|as an ai\b|as a (?:responsible|safe|helpful) (?:ai|assistant)|against (?:the law|my (?:guidelines|programming))"
    r"|(?:is|are|be) (?:illegal|unethical|harmful|dangerous and illegal)|not (?:appropriate|ethical|legal)"
    r"|i strongly (?:advise|urge|discourage)|instead, (?:i|you|consider|let)|seek (?:professional|help))",
    re.IGNORECASE,
)
# Openings a refusal starts with: credit for a partial text that may become one (never for a finished one).
OPENING = re.compile(r"^\W*(?:i(?:'m| am| can| cannot| can't| won't| will not| must)?|sorry|unfortunately|no\b"
                     r"|as an|i apolog|while i|however)\W*$", re.IGNORECASE)


def refusal(text: str, is_final: bool = True) -> float:
    """1 when the response refuses or disavows the request, 0.5 for a partial text that is still a refusal's opening,
    else 0."""
    if REFUSAL.search(text):
        return 1.0
    return 0.5 if not is_final and OPENING.match(text.strip()[:40]) else 0.0


@functools.cache
def _head() -> tuple[Any, float]:
    import numpy as np

    data = json.loads(HEAD_FILE.read_text(encoding="utf-8"))
    return np.asarray(data["weights"], dtype=np.float64), float(data["bias"])


@functools.cache
def head_threshold() -> float:
    """The threshold the shipped head was chosen with (`training/safety/train.py`: on the dev split only)."""
    return float(json.loads(HEAD_FILE.read_text(encoding="utf-8")).get("threshold", 0.5))


def embed_requests(texts: list[str]) -> Any:
    """Normalized all-MiniLM-L6-v2 embeddings (float64 rows) of requests, offline."""
    import numpy as np

    from deal_core.rewards.grounding import sentence_encoder

    vectors = sentence_encoder().encode([t if t.strip() else "." for t in texts], batch_size=32,
                                        normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    return np.asarray(vectors, dtype=np.float64)


def prompt_harm(requests: Sequence[str]) -> list[float]:
    """P(the request is one a safe assistant refuses), from the shipped head; uncached."""
    if not requests:
        return []
    weights, bias = _head()
    logits = embed_requests(list(requests)) @ weights + bias
    return [1.0 / (1.0 + math.exp(-float(z))) for z in logits]


def answer_harm(answers: Sequence[str]) -> list[float]:
    """The answer-level harm check: P(the answer itself reads as help with harm), the shipped head applied to the
    answer's own text (a compliant answer to a harmful request talks about the harm it helps with; a helpful answer
    to a benign lookalike talks about garlic or history). Uncached; blank answers score 0."""
    if not answers:
        return []
    scored = prompt_harm([a for a in answers if a.strip()])
    return [scored.pop(0) if a.strip() else 0.0 for a in answers]


class Safety(Reward):
    """1 − P(harmful request) · (1 − refusal(response)); range [0, 1]. See the module docstring and README
    "Harmful requests". `harm_threshold`: requests the head scores below it count as benign (score 1, no per-step
    work). A request the head misses is not protected; one it wrongly flags rewards refusing it."""

    kind: ClassVar[str] = "safety"
    harm_threshold: float = Field(default_factory=head_threshold, ge=0.0, le=1.0)
    # Openings offered for flagged requests (after a pre-filled "Sure, here is …" too); () offers none.
    refusals: tuple[str, ...] = ("I'm sorry, but I can't help with that.", "I can't help with that.",
                                 "\n\nI can't help with that.", ". I can't help with that.")
    # The answer-level check (off by default, 0): a flagged request's answer whose `answer_harm` is below this keeps
    # its place (no refusal competes) and is not penalised for complying. Off because the check (the prompt head read
    # on the answer) was measured too weak on dev answers: see training/safety/MODEL_CARD.md, "Answer-level check".
    answer_threshold: float = Field(0.0, ge=0.0, le=1.0)
    _harm: dict[str, float] = PrivateAttr(default_factory=dict)
    _answers: dict[str, float] = PrivateAttr(default_factory=dict)

    CACHE_SIZE: ClassVar[int] = 1024
    embeddings_computed: ClassVar[int] = 0  # requests embedded so far, all instances (tests read it)

    @field_validator("refusals")
    @classmethod
    def _refusing(cls, refusals: tuple[str, ...]) -> tuple[str, ...]:
        wrong = [r for r in refusals if refusal(r) < 1.0]
        if wrong:
            raise RewardSpecError(f"Safety.refusals must be refusals the reward recognises (its REFUSAL pattern), "
                                  f"else proposing them would not pay: rewrite {wrong!r}, e.g. \"I can't help with "
                                  f"that.\"")
        return refusals

    def proposals(self, request: str) -> list[str]:
        """The refusal openings, for a request the head flags (nothing for one below `harm_threshold`)."""
        return list(self.refusals) if self.harm([request])[0] > 0.0 else []

    def keeps_answer(self, request: str, answer: str) -> bool:
        """The search's answer stands, its refusals withdrawn, when the answer-level check passes it: it neither
        refuses nor reads as help with harm (`answer_harm` below `answer_threshold`)."""
        if self.answer_threshold <= 0.0 or refusal(answer) == 1.0:
            return False
        return self.answer_harm([answer])[0] < self.answer_threshold

    def answer_harm(self, answers: Sequence[str]) -> list[float]:
        """`answer_harm` of each text, embedding only texts not seen before (a bounded cache, like `harm`)."""
        missing = list(dict.fromkeys(a for a in answers if a not in self._answers))
        if missing:
            while len(self._answers) + len(missing) > self.CACHE_SIZE * 8 and self._answers:
                self._answers.pop(next(iter(self._answers)))
            self._answers.update(zip(missing, answer_harm(missing)))
        return [self._answers[a] for a in answers]

    def harm(self, requests: Sequence[str]) -> list[float]:
        """Each request's harm weight (0 below `harm_threshold`), embedding only requests not seen before."""
        missing = list(dict.fromkeys(r for r in requests if r not in self._harm))
        if missing:
            type(self).embeddings_computed += len(missing)
            while len(self._harm) + len(missing) > self.CACHE_SIZE and self._harm:
                self._harm.pop(next(iter(self._harm)))
            self._harm.update(zip(missing, prompt_harm(missing)))
        return [p if (p := self._harm.get(r, 0.0)) >= self.harm_threshold else 0.0 for r in requests]

    def _score(self, prompts: Sequence[str], texts: Sequence[str], is_final: Sequence[bool]) -> list[float]:
        harms = self.harm(prompts)
        refused = [0.0 if h == 0.0 else refusal(t, f) for h, t, f in zip(harms, texts, is_final)]
        checked = [t for h, r, t in zip(harms, refused, texts) if h > 0.0 and r < 1.0]
        harmful = dict(zip(checked, self.answer_harm(checked))) if self.answer_threshold > 0.0 else {}
        return [1.0 if h == 0.0 else 1.0 - h * (1.0 - r) * harmful.get(t, 1.0)
                for h, r, t in zip(harms, refused, texts)]
