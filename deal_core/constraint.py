"""Hard output constraints: tool calls and JSON, enforced token by token during the search.

A request's tools, `tool_choice` and `response_format` become one grammar (llguidance's Lark dialect, with JSON
schemas inline). Every search row carries a `Constraint`, a matcher over that grammar; before the model proposes
its next tokens, tokens the grammar forbids are masked, so candidates and greedy lookaheads are valid prefixes and
a finished output always parses. llguidance (the engine vLLM and llama.cpp use) computes the masks.

Tool-call format, for chat templates that do not render tools themselves (the Hermes / Qwen convention small open
models are trained on):

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

The JSON is canonical (`json.dumps` spacing, no other whitespace), and tool arguments are closed objects: only the
declared parameters are generated.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from deal_core.errors import ConfigError, DeALError

if TYPE_CHECKING:
    from deal_core.request import Request, Tool, ToolCall

CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
_JSON_OPTIONS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
_CALLS = re.compile(re.escape(CALL_OPEN) + r"\n(.*?)\n" + re.escape(CALL_CLOSE), re.S)


class ConstraintError(DeALError, ValueError):
    """A grammar that cannot be built or completed (bad schema, budget too small for the forced output)."""


class Constraint(Protocol):
    """One row's position in a grammar. The search forks it per candidate and rolls it back when tails shrink."""

    def fork(self) -> Constraint: ...

    def consume(self, token: int) -> None: ...

    def rollback(self, tokens: int) -> None: ...

    def allowed(self) -> np.ndarray: ...  # int32 bitmask over the vocabulary: bit t of word t // 32 = token t

    @property
    def accepting(self) -> bool: ...  # the tokens so far form a complete output


class Matcher:
    """A `Constraint` over an llguidance grammar (the tokenizer is the backend's, see `Backend.grammar_tokenizer`)."""

    def __init__(self, matcher: Any):
        self._m = matcher

    @classmethod
    def build(cls, tokenizer: Any, grammar: str) -> Matcher:
        import llguidance

        matcher = llguidance.LLMatcher(tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise ConstraintError(f"the output format cannot be enforced: {matcher.get_error()}")
        return cls(matcher)

    def fork(self) -> Matcher:
        return Matcher(self._m.deep_copy())

    def consume(self, token: int) -> None:
        if not self._m.consume_token(token):
            raise ConstraintError(f"token {token} breaks the output format: {self._m.get_error()}")

    def rollback(self, tokens: int) -> None:
        if tokens and not self._m.rollback(tokens):
            raise ConstraintError(f"cannot roll the output format back by {tokens} tokens: {self._m.get_error()}")

    def allowed(self) -> np.ndarray:
        return np.frombuffer(self._m.compute_bitmask(), dtype=np.int32)

    @property
    def accepting(self) -> bool:
        return self._m.is_accepting()

    def forced(self) -> list[int]:
        """Tokens the grammar forces from here, whatever the model prefers."""
        return list(self._m.compute_ff_tokens())


def allowed_tokens(bitmask: np.ndarray, vocab: int) -> np.ndarray:
    """A bitmask as a boolean array over `vocab` tokens."""
    return np.unpackbits(bitmask.view(np.uint8), bitorder="little")[:vocab].astype(bool)


# -- grammars ------------------------------------------------------------------------------------------------
def closed(schema: Any) -> Any:
    """A copy of `schema` whose objects with declared properties allow no other keys (unless they say otherwise),
    with the canonical JSON spacing for llguidance."""
    def close(node: Any) -> Any:
        if isinstance(node, dict):
            node = {k: close(v) for k, v in node.items()}
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            return node
        if isinstance(node, list):
            return [close(v) for v in node]
        return node

    out = close(copy.deepcopy(schema))
    if isinstance(out, dict):
        out["x-guidance"] = {**_JSON_OPTIONS, **out.get("x-guidance", {})}
    return out


def _lark_string(text: str) -> str:
    return json.dumps(text)


def _call_body(tool: Tool) -> str:
    """A call after its opening tag: name, arguments valid for the tool's schema, closing tag."""
    head = f'\n{{"name": {json.dumps(tool.name)}, "arguments": '
    tail = "}\n" + CALL_CLOSE
    return f"{json.dumps(head)} %json {json.dumps(closed(tool.parameters))} {json.dumps(tail)}"


def tool_grammar(tools: Sequence[Tool], mode: str, name: str | None, parallel: bool) -> str:
    """`required`: the output is one call (several, one per line, when `parallel`) of the tools (of `name` only when
    given). `auto`: free text that either never opens a call or ends with such calls."""
    chosen = [t for t in tools if name is None or t.name == name]
    more = ' ("\\n" call)*' if parallel else ""
    lines = [
        f"start: call{more}" if mode == "required" else f"start: TEXT | open body{more}",
        f"call: {json.dumps(CALL_OPEN)} body",
        "body: " + " | ".join(f"body_{i}" for i in range(len(chosen))),
        *(f"body_{i}: {_call_body(t)}" for i, t in enumerate(chosen)),
    ]
    if mode != "required":  # the text ends at the first opening tag: that tag must open a valid call
        lines += [f"open[lazy]: TEXT {json.dumps(CALL_OPEN)}",
                  "TEXT: /(.|\\n)*/ & ~/(.|\\n)*<tool_call>(.|\\n)*/"]
    return "\n".join(lines)


def json_grammar(schema: dict[str, Any]) -> str:
    return f"start: %json {json.dumps(closed(schema))}"


def grammar_for(request: Request) -> str | None:
    """The grammar a request's output must match, or None for free text."""
    fmt = request.response_format
    mode, name = request.choice
    if request.tools and mode != "none":
        return tool_grammar(request.tools, mode, name, request.parallel_tool_calls)
    if fmt is not None and fmt.type == "json_schema":
        return json_grammar(fmt.json_schema or {})
    if fmt is not None and fmt.type == "json_object":
        return json_grammar({"type": "object"})
    return None


def check_grammar(grammar: str, what: str) -> None:
    """Raise `ConfigError` naming `what` when llguidance rejects the grammar (an unsupported or invalid schema)."""
    import llguidance

    is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(grammar)
    if is_error:
        raise ConfigError(f"{what} cannot be enforced: {messages[0] if messages else 'invalid schema'}; "
                          "fix the JSON schema (types, $refs, patterns)")


# -- reading the output back ---------------------------------------------------------------------------------
def split_tool_calls(text: str) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
    """The free text before the calls, and each call's (name, arguments). A call identical to an earlier one (same
    name and arguments: small models repeat themselves) is made once; the raw text keeps what was generated."""
    first = text.find(CALL_OPEN)
    if first < 0:
        return text, []
    calls: list[tuple[str, dict[str, Any]]] = []
    for body in _CALLS.findall(text[first:]):
        data = json.loads(body)
        if (data["name"], data["arguments"]) not in calls:
            calls.append((data["name"], data["arguments"]))
    return text[:first].rstrip(), calls


def format_tool_call(call: ToolCall) -> str:
    """A call as the model writes it (for templates without native tool support)."""
    body = json.dumps({"name": call.name, "arguments": call.arguments}, ensure_ascii=False)
    return f"{CALL_OPEN}\n{body}\n{CALL_CLOSE}"
