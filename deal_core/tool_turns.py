"""Tool turns: deciding `tool_choice="auto"`, the minimum budget of a turn that calls, and reading calls back so that
a call cut by the budget is never returned as a runnable call.

- **"auto"**: a `ToolNeed` (see `deal_core/rewards/tool_need.py`) turns it into a forced call when the request needs
  a bound tool, and into `"none"` otherwise. Without the embedder package (extra `rewards`) "auto" is left to the
  model.
- **Minimum budget**: a turn that must call gets at least the shortest complete call of its longest tool plus
  `TOKENS_PER_ARGUMENT` tokens per parameter, so a small `max_tokens` does not squeeze arguments into `""` or `0`.
- **Answers from results**: an answer turn after tool results (no call left to make: no tools, or the choice is
  "none", as `ToolNeed` decides once the needed tools were called) gets `ToolResultUse(results)` added to its
  rewards with weight `tool_result_weight` (default 1; 0 turns it off), so the search prefers answers that state the
  results' values over the model's own guesses (`deal_core/rewards/tool_results.py`).
- **Cut calls**: when the budget closed a call (the search finished it along its shortest path), or ended inside
  one, that call goes to `GenerationResult.invalid_tool_calls` with its raw text and the reason; the complete calls
  before it stand, and `finish_reason` is "length".
- **Retry**: a turn whose only output is such a cut call is asked again once with twice the budget
  (`retry_for_cut_call`; `ChatDeAL.invoke` does it): an agent would otherwise end on an empty answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from deal_core.constraint import CALL_OPEN, TOOL_CALLS, ConstraintError, Matcher, split_tool_calls, tool_grammar
from deal_core.errors import ConfigError, DeALError
from deal_core.rewards.base import RewardSum
from deal_core.rewards.tool_need import (calls_since_user, listed_words, next_value, number_parameters,
                                         results_since_user, same_stem, value_words)
from deal_core.rewards.tool_results import ToolResultUse

if TYPE_CHECKING:
    from deal_core.config import DeALConfig
    from deal_core.request import Request, Tool
    from deal_core.result import GenerationResult
    from deal_core.rewards.tool_need import ToolNeed

TOKENS_PER_ARGUMENT = 8  # room for each parameter's value beyond its shortest form ("", 0): measured on BFCL values
_NAME = re.compile(r'"name": "((?:[^"\\]|\\.)*)"')
_ARGUMENTS = '"arguments": '
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:,\d{3})*(?:\.\d+)?(?![\w]|\.\d)")
_ROLES = {"from": "from", "source": "from", "to": "to", "target": "to"}  # a parameter name's word: its role
_CAPITALS_ONLY = re.compile(r"^\^?\[A-Z\](?:\{\d+(?:,\d*)?\}|\+)\$?$")  # a pattern such as ^[A-Z]{3}$


def decide_auto(request: Request, need: ToolNeed | None) -> Request:
    """The request with `"auto"` replaced by the `ToolNeed` decision (a tool by name, or "none"); unchanged
    otherwise. A tool called again for another value the request names ("in Cairo or in London") has that parameter
    narrowed to that value, so the grammar writes it (`tool_need.next_value`)."""
    if need is None or not request.tools or request.choice[0] != "auto":
        return request
    try:
        mode, _ = need.decide(request)
    except DeALError:  # the embedder is not installed: the model decides
        return request
    update: dict[str, Any] = {"tool_choice": mode}
    if isinstance(mode, dict):
        update["tools"] = [_narrowed_for_call(request, t) if t.name == mode["function"]["name"] else t
                           for t in request.tools]
    return request.model_copy(update=update)


def _narrowed_for_call(request: Request, tool: Tool) -> Tool:
    """The tool a forced call writes: narrowed to the other value of a comparison (`tool_need.next_value`) and to
    the number the request takes from an earlier result (`carried_value`)."""
    again = next_value(request)
    if again and again[0] == tool.name and again[0] in {c.name for c in calls_since_user(request)}:
        tool = narrowed(tool, again[1], again[2])
    carry = carried_value(request, tool)
    for parameter, values in role_values(request, tool).items():
        tool = narrowed(tool, parameter, *values)
    return narrowed(tool, *carry) if carry else tool


def role_values(request: Request, tool: Tool) -> dict[str, list[str]]:
    """{parameter: value} for the tool's free string parameters named for a direction (`from_unit`, `to_unit`,
    `source`, `target`) when the request writes values the tool lists (`value_words`) in those roles: a value after
    "from" or after a number is the source ("5 kilograms", "from kilograms"), after "to", "into" or "in" the target;
    when one role is found and one other listed value is written, that value takes the other role ("How many pounds
    is 5 kilograms?"). The value is the tool's own spelling ("kilometer" -> "kilometers"). When only one role is
    written, the other parameter may take any other listed value ("in fahrenheit": from anything but fahrenheit)."""
    spec = tool.parameters.get("properties", {}) if isinstance(tool.parameters, dict) else {}
    roles = {word: p for p, s in spec.items() if isinstance(s, dict) and s.get("type") == "string"
             and not s.get("enum") for word in re.findall(r"[a-z]+", p.lower()) if word in _ROLES}
    if not roles:
        return {}
    listed = value_words(tool) - set(re.findall(r"[a-z]+", tool.name.lower()))
    found = _directions(re.findall(r"[A-Za-z]+|-?\d+(?:\.\d+)?", request.text), listed)
    others = sorted(set(listed_words(tool)))
    others = [v.lower() for v in others if v.lower() not in found.values()]
    return {p: [found[_ROLES[word]]] if _ROLES[word] in found else others for word, p in roles.items()
            if _ROLES[word] in found or (found and others)}


def _directions(words: list[str], listed: set[str]) -> dict[str, str]:
    """{"from": value, "to": value} for the listed values `words` write in those roles (see `role_values`)."""
    found: dict[str, str] = {}
    written: list[str] = []
    for i, word in enumerate(words):
        value = next((v for v in sorted(listed) if same_stem(word.lower(), v)), None)
        if value is None or value in written:
            continue
        written.append(value)
        before = words[i - 1].lower() if i else ""
        role = "from" if before == "from" or before[-1:].isdigit() else "to" if before in ("to", "into", "in") \
            else None
        if role and role not in found:
            found[role] = value
    rest = [v for v in written if v not in found.values()]
    if len(found) == 1 and len(rest) == 1:
        found["to" if "from" in found else "from"] = rest[0]
    return found


def _numbers(text: str) -> list[tuple[int, float]]:
    """(position, value) of each number written in `text` ("-3", "8.05", "709,000")."""
    return [(m.start(), float(m.group().replace(",", ""))) for m in _NUMBER.finditer(text)]


def _numeric(arguments: dict[str, Any]) -> set[float]:
    return {float(v) for v in arguments.values() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def carried_value(request: Request, tool: Tool) -> tuple[str, float | int] | None:
    """(parameter, value) when the call of `tool` takes a number from the last tool result: the tool has more
    number parameters than the request has numbers left (numbers no call since the user's message used), so one
    of them is a value the request names by what an earlier tool returns ("the population of Oslo multiplied by
    3", "convert 5 miles to kilometers, then multiply the result by 2"). The value is the last number of the last
    result that is not an argument of the call that returned it ("5 miles is 8.05 kilometers" -> 8.05); the
    parameter is the one at its place in the request: number parameters are filled in the order the request
    writes its values, the earlier result standing where the request names that call's values ("Oslo", "5")."""
    calls, results = calls_since_user(request), results_since_user(request)
    spec = tool.parameters.get("properties", {}) if isinstance(tool.parameters, dict) else {}
    params = number_parameters(tool)
    if not calls or not results or not params:
        return None
    used = {v for c in calls for v in _numeric(c.arguments)}
    left = [(at, v) for at, v in _numbers(request.text) if v not in used]
    new = [v for _, v in _numbers(results[-1]) if v not in _numeric(calls[-1].arguments)]
    if len(params) <= len(left) or not new:
        return None
    value = new[-1]
    named = [request.text.lower().find(_written(v).lower()) for v in calls[-1].arguments.values() if _written(v)]
    where = min((at for at in named if at >= 0), default=-1)
    param = params[min(sum(at < where for at, _ in left), len(params) - 1)]
    if spec[param]["type"] == "integer" and not value.is_integer():
        return None
    return param, int(value) if value.is_integer() else value


def _written(value: Any) -> str:
    """A call's argument as a request would write it (5.0 -> "5")."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def narrowed(tool: Tool, parameter: str, value: Any, *more: Any) -> Tool:
    """`tool` whose `parameter` accepts only `value` (or one of `value, *more`)."""
    schema = dict(tool.parameters)
    properties = dict(schema.get("properties", {}))
    properties[parameter] = {**properties.get(parameter, {}), "enum": [value, *more]}
    return tool.model_copy(update={"parameters": {**schema, "properties": properties}})


def results_to_answer(request: Request) -> tuple[str, ...]:
    """The tool results since the last user message when this turn answers from them (it makes no call); else ()."""
    if request.tools and request.choice[0] != "none":
        return ()
    return results_since_user(request)


def with_result_use(rewards: RewardSum, requests: Sequence[Request], term_weight: float) -> RewardSum:
    """`rewards` plus `term_weight` × ToolResultUse of the requests' tool results, on a turn that answers from
    them; after two results or more its proposal is the answer that states them (`answer_opening`: one result is
    left to the search, which states it well, and a proposed quote of one result can carry its offensive words)."""
    results = {(results_to_answer(r), answer_opening(r) if len(results_to_answer(r)) > 1 else "") for r in requests}
    if not term_weight or {r for r, _ in results} == {()}:
        return rewards
    if len(results) > 1:
        raise ConfigError("the requests of one batch answer from different tool results, so their rewards differ: "
                          "run them apart, or pass tool_result_weight=0")
    answered, opening = results.pop()
    return rewards + ToolResultUse(results=answered, opening=opening) * term_weight


def answer_opening(request: Request) -> str:
    """An answer that states what the request asked for from the tool results since the user's message: each
    result that no later call took a number from (a chain's last result, both results of a comparison), labelled
    with its call's string arguments that the request writes and the result does not ("Tokyo: Cloudy, 18
    degrees. Sydney: Sunny, 25 degrees."), enum values left out. Results pair with calls in order. Empty without
    results."""
    calls, text = calls_since_user(request), request.text.lower()
    results = [m.content.strip() for m in _after_user(request) if m.role == "tool"]
    parts = []
    for i, (call, result) in enumerate(zip(calls, results)):
        new = {v for _, v in _numbers(result)} - _numeric(call.arguments)
        if not result or new & {v for later in calls[i + 1:] for v in _numeric(later.arguments)}:
            continue  # blank, or a value a later call took: that call's result is what was asked
        spec = next((t.parameters.get("properties", {}) for t in request.tools if t.name == call.name), {})
        label = [v.strip() for p, v in call.arguments.items() if isinstance(v, str) and v.strip()
                 and not (spec.get(p) or {}).get("enum")  # an operation ("multiply") names no value
                 and v.strip().lower() in text and v.strip().lower() not in result.lower()]
        parts.append(f"{', '.join(label)}: {result}" if label else result)
    return " ".join(p if p.endswith((".", "!", "?")) else p + "." for p in parts)


def _after_user(request: Request) -> list[Any]:
    last_user = max((i for i, m in enumerate(request.messages) if m.role == "user"), default=-1)
    return list(request.messages[last_user + 1:])


def minimum_budget(tokenizer: Any, request: Request) -> int:
    """Tokens a turn that must call needs at least (0 when it need not call)."""
    mode, name = request.choice
    if not request.tools or mode != "required":
        return 0
    longest = 0
    for tool in request.tools:
        if name is not None and tool.name != name:
            continue
        try:
            path = Matcher.build(tokenizer, tool_grammar([tool], "required", None, False)).closing_path(4096) or []
        except ConstraintError:  # a schema llguidance rejects: the format check says so, naming the tool
            return 0
        params = tool.parameters.get("properties", {}) if isinstance(tool.parameters, dict) else {}
        longest = max(longest, len(path) + TOKENS_PER_ARGUMENT * len(params))
    return longest


def retry_for_cut_call(request: Request, result: GenerationResult, base: DeALConfig) -> Request | None:
    """When a turn's only output is a call the budget cut (no text, no runnable call), the request again with twice
    the budget it ran with; else None. An agent would otherwise end on an empty answer (`deal bench agent`)."""
    if result.tool_calls or result.text.strip() or not result.invalid_tool_calls:
        return None
    budget = max(request.config(base).max_new_tokens, result.usage.completion_tokens)
    return request.model_copy(update={"settings": {**request.settings, "max_new_tokens": 2 * budget}})


def _cut_call(body: str, why: str, whole: bool = False) -> dict[str, Any]:
    """A call that is not runnable, as LangChain's `invalid_tool_calls` entries are: name, raw arguments, error.
    `whole`: `body` is a complete call's JSON, whose last "}" closes the call object, not the arguments."""
    name = _NAME.search(body)
    start = body.find(_ARGUMENTS)
    arguments = body[start + len(_ARGUMENTS):] if start >= 0 else ""
    if whole and arguments.endswith("}"):
        arguments = arguments[:-1]
    return {"name": name.group(1) if name else None, "args": arguments, "error": why}


def normalised(arguments: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """`arguments` as the schema asks them, where a value means one the schema allows but is written otherwise: an
    enum value in another case or spacing ("Celsius " for "celsius"), a number or integer written as a string
    ("12", "3.0"), an integer written with a zero fraction (3.0), a code (a string whose pattern allows only
    capitals, such as ISO 4217's `^[A-Z]{3}$`) in small letters. Other values are left as they are."""
    properties = schema.get("properties", {}) if isinstance(schema, dict) else {}
    return {k: _as_schema_asks(v, properties.get(k)) if isinstance(properties.get(k), dict) else v
            for k, v in arguments.items()}


def _as_schema_asks(value: Any, spec: dict[str, Any]) -> Any:
    kind = spec.get("type")
    if isinstance(value, str) and spec.get("enum"):
        match = [e for e in spec["enum"] if isinstance(e, str) and e.lower() == " ".join(value.lower().split())]
        return match[0] if value not in spec["enum"] and len(match) == 1 else value
    if isinstance(value, str) and kind in ("number", "integer"):
        try:
            number = float(value.strip().replace(",", ""))
        except ValueError:
            return value
        return int(number) if kind == "integer" and number.is_integer() else number
    if isinstance(value, float) and kind == "integer" and value.is_integer():
        return int(value)
    if isinstance(value, str) and _CAPITALS_ONLY.match(spec.get("pattern", "")) and value.strip().isalpha():
        return value.strip().upper()
    return value


def read_calls(raw: str, complete: bool,
               closed_early: bool) -> tuple[str, list[tuple[str, dict[str, Any]]], list[dict[str, Any]]]:
    """The text before the calls, the runnable calls, and the calls the budget cut (see the module docstring)."""
    first = raw.find(CALL_OPEN)
    if first < 0:
        return raw, [], []
    spans = list(TOOL_CALLS.finditer(raw, first))
    end = spans[-1].end() if spans else first
    tail = raw[end:].strip()
    cut = []
    if tail and (tail.startswith(CALL_OPEN[: len(tail)]) or CALL_OPEN in tail):
        cut.append(_cut_call(tail, "the answer reached max_new_tokens inside this call"))
    if closed_early and spans and not cut:
        cut.append(_cut_call(spans[-1].group(1), "max_new_tokens ran out while writing this call: its arguments "
                                                 "were completed with placeholder values, so it was not returned",
                             whole=True))
        spans = spans[:-1]
    kept = raw[: spans[-1].end()] if spans else raw[:first]
    text, calls = split_tool_calls(kept)
    return text.rstrip(), calls, cut
