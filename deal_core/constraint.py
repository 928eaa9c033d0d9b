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

from deal_core.errors import ConfigError, ConstraintError

if TYPE_CHECKING:
    from deal_core.request import Request, Tool, ToolCall

CALL_OPEN, CALL_CLOSE = "<tool_call>", "</tool_call>"
_JSON_OPTIONS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
TOOL_CALLS = re.compile(  # one whole call as the model writes it; group 1: its JSON body
    re.escape(CALL_OPEN) + r"\n(.*?)\n" + re.escape(CALL_CLOSE), re.DOTALL)


class Constraint(Protocol):
    """One row's position in a grammar. The search forks it per candidate and rolls it back when tails shrink."""

    def fork(self) -> Constraint: ...

    def consume(self, token: int) -> None: ...

    def rollback(self, tokens: int) -> None: ...

    def allowed(self, budget: int | None = None) -> np.ndarray: ...
    # int32 bitmask over the vocabulary (bit t of word t // 32 = token t); `budget`: tokens left for the answer

    @property
    def accepting(self) -> bool: ...  # the tokens so far form a complete output

    @property
    def closed_early(self) -> bool: ...  # the budget forced the output to close


# Tokens that end what is open in JSON, most useful first: the closing path prefers them (see Matcher.closing_path).
# "" first (an empty string value); "," before "0" (inside a number, a digit would only make it longer)
ENDS = ('""', '"}', '"]', '"', "}", "]", ",")  # tokens that end a value (a string, an object, an array, an item)
CLOSERS = (*ENDS, "0", "false", "null", "{}")  # ...then the shortest values, for a key that still needs one
CLOSE_WINDOW = 64  # the closing path is looked for when at most this many tokens are left
CLOSE_MARGIN = 2  # ...and taken when it needs no fewer than the tokens left minus this margin
CLOSE_GUARD = 8  # within this many tokens of that point, no token may lengthen the way out beyond the budget
SMALL_CHOICE = 64  # at most this many allowed tokens (a structural position: "," or "]"): each is tried
_STRUCTURE = (b'"', b"[", b"{")  # in a large choice (a string, a number), tokens holding these may open more output
_RISKY: dict[int, tuple[Any, np.ndarray]] = {}  # per grammar tokenizer (kept alive): tokens holding _STRUCTURE


class Matcher:
    """A `Constraint` over an llguidance grammar (the tokenizer is the backend's, see `Backend.grammar_tokenizer`).

    Budget: when few tokens are left, `allowed(budget)` looks for a short way to finish the output (forced tokens,
    then closing quotes and brackets, minimal values for required keys) and, once that path needs (nearly) all the
    tokens left, allows only its next token. A model looping inside a string therefore still ends with valid
    output; `closed_early` records it (the answer's finish_reason is then "length")."""

    def __init__(self, matcher: Any, closers: tuple[int, ...] = (), closed_early: bool = False,
                 eos: frozenset[int] = frozenset(), risky: np.ndarray | None = None, ends: int = 0):
        self._m, self._closers, self.closed_early, self._eos = matcher, closers, closed_early, eos
        self._risky, self._ends = risky, closers[:ends]

    def _with(self, matcher: Any) -> Matcher:
        """A matcher at `matcher`'s position with this one's closers and masks."""
        return Matcher(matcher, self._closers, self.closed_early, self._eos, self._risky, len(self._ends))

    @classmethod
    def build(cls, tokenizer: Any, grammar: str) -> Matcher:
        import llguidance

        matcher = llguidance.LLMatcher(tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise ConstraintError(f"the output format cannot be enforced: {matcher.get_error()}")
        closers, ends = [], 0
        for i, text in enumerate(CLOSERS):
            ids = tokenizer.tokenize_str(text)
            if len(ids) == 1:
                closers.append(ids[0])
                ends += i < len(ENDS)
        risky = _risky(tokenizer, closers, len(matcher.compute_bitmask()) // 4)
        return cls(matcher, tuple(closers), eos=frozenset(tokenizer.eos_tokens), risky=risky, ends=ends)

    def fork(self) -> Matcher:
        return self._with(self._m.deep_copy())

    def consume(self, token: int) -> None:
        if not self._m.consume_token(token):
            raise ConstraintError(f"token {token} breaks the output format: {self._m.get_error()}")

    def rollback(self, tokens: int) -> None:
        if tokens and not self._m.rollback(tokens):
            raise ConstraintError(f"cannot roll the output format back by {tokens} tokens: {self._m.get_error()}")

    def allowed(self, budget: int | None = None) -> np.ndarray:
        bits = np.frombuffer(self._m.compute_bitmask(), dtype=np.int32)
        if budget is None or budget > CLOSE_WINDOW:
            return bits
        if self._m.is_accepting():
            return self._fitting(bits, budget)
        path = self.closing_path(budget)
        if path is None or len(path) + CLOSE_MARGIN + CLOSE_GUARD < budget:
            return bits
        if len(path) + CLOSE_MARGIN < budget:
            return self._guarded(bits, budget)
        self.closed_early = True
        only = np.zeros_like(bits)
        only[path[0] // 32] = np.int32(np.uint32(1 << (path[0] % 32)).view(np.int32))
        return only

    def _fitting(self, bits: np.ndarray, budget: int) -> np.ndarray:
        """At a complete output that only a new element may extend (another tool call: few tokens allowed), the
        tokens that start one which cannot be finished within the budget are masked: the output ends instead."""
        starts = [int(t) for t in np.flatnonzero(allowed_tokens(bits, len(bits) * 32)) if t not in self._eos]
        if len(starts) > 8:  # free text goes on: nothing to finish
            return bits
        out = bits.copy()
        for token in starts:
            probe = self._with(self._m.deep_copy())
            path = probe.closing_path(budget - 1) if probe._m.consume_token(token) else None
            if path is None or 1 + len(path) + CLOSE_MARGIN > budget:
                out[token // 32] &= np.int32(~np.uint32(1 << (token % 32)).view(np.int32))
        return out

    def _guarded(self, bits: np.ndarray, budget: int) -> np.ndarray:
        """Near the end of the budget, the tokens after which the output could no longer be closed in time are
        masked: at a structural position (few choices: another array item, another key) each choice is tried; in a
        string or number the tokens that may open more structure (a quote, a bracket) are masked, closers aside."""
        choices = np.flatnonzero(allowed_tokens(bits, len(bits) * 32))
        if len(choices) > SMALL_CHOICE:
            return bits & ~self._risky if self._risky is not None else bits
        out = bits.copy()
        for token in (int(t) for t in choices if t not in self._eos):
            probe = self._with(self._m.deep_copy())
            path = probe.closing_path(budget - 1) if probe._m.consume_token(token) else None
            if path is None or 1 + len(path) + CLOSE_MARGIN > budget:
                out[token // 32] &= np.int32(~np.uint32(1 << (token % 32)).view(np.int32))
        return out

    def closing_path(self, limit: int) -> list[int] | None:
        """A short token path to a complete output (at most `limit` tokens), or None when none is found."""
        probe, path = self._m.deep_copy(), []
        while len(path) < limit:
            if probe.is_accepting():
                return path
            forced = list(probe.compute_ff_tokens())
            if forced:
                if not probe.consume_tokens(forced):
                    return None
                path += forced
                continue
            token = self._closing_token(probe)
            if token is None:
                return None
            if not probe.consume_token(token):
                return None
            path.append(token)
        return path if probe.is_accepting() else None

    def _closing_token(self, probe: Any) -> int | None:
        """The next token of a closing path: one that ends a value; else, among few choices (the digits of a number
        that must be a multipleOf), one after which a value may end; else a shortest value; else the first allowed
        (an enum, a pattern: only the model can finish those)."""
        ok = allowed_tokens(np.frombuffer(probe.compute_bitmask(), dtype=np.int32), 1 << 30)
        token = next((t for t in self._ends if t < len(ok) and ok[t]), None)
        candidates = np.flatnonzero(ok)
        if token is None and len(candidates) <= SMALL_CHOICE:
            for choice in (int(t) for t in candidates if t not in self._eos):
                ahead = probe.deep_copy()
                if ahead.consume_token(choice) and (ahead.is_accepting() or any(allowed_tokens(
                        np.frombuffer(ahead.compute_bitmask(), dtype=np.int32), 1 << 30)[list(self._ends)])):
                    return choice
        if token is None:
            token = next((t for t in self._closers if t < len(ok) and ok[t]), None)
        return token if token is not None else (int(candidates[0]) if len(candidates) else None)

    @property
    def accepting(self) -> bool:
        return self._m.is_accepting()


def _risky(tokenizer: Any, closers: list[int], words: int) -> np.ndarray:
    """Bitmask of the tokens holding a quote or an opening bracket, the closers excepted (cached per tokenizer)."""
    key = id(tokenizer)
    if key not in _RISKY or len(_RISKY[key][1]) != words:
        size = tokenizer.vocab_size
        flags = np.zeros(words * 32, dtype=bool)
        for token in range(size):
            text = tokenizer.decode_bytes([token])
            flags[token] = any(c in text for c in _STRUCTURE)
        flags[list(closers)] = False
        _RISKY[key] = (tokenizer, np.packbits(flags, bitorder="little").view(np.int32))
    return _RISKY[key][1]


def allowed_tokens(bitmask: np.ndarray, vocab: int) -> np.ndarray:
    """A bitmask as a boolean array over `vocab` tokens."""
    return np.unpackbits(bitmask.view(np.uint8), bitorder="little")[:vocab].astype(bool)


# -- grammars ------------------------------------------------------------------------------------------------
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_ONE = ("items", "additionalProperties", "unevaluatedProperties", "additionalItems", "contains",
               "propertyNames", "not", "if", "then", "else")
_SCHEMA_LISTS = ("anyOf", "allOf", "oneOf", "prefixItems")


def closed(schema: Any) -> Any:
    """A copy of `schema` whose objects with declared properties allow no other keys (unless they say otherwise),
    with the canonical JSON spacing for llguidance. Only subschemas are walked: property names, enums, consts and
    defaults are data and stay as they are."""
    def close(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        out = dict(node)
        for key, value in node.items():
            if key in _SCHEMA_MAPS and isinstance(value, dict):
                out[key] = {name: close(sub) for name, sub in value.items()}
            elif key in _SCHEMA_ONE:
                out[key] = close(value)
            elif key in _SCHEMA_LISTS and isinstance(value, list):
                out[key] = [close(sub) for sub in value]
        if isinstance(out.get("properties"), dict) and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out

    out = close(copy.deepcopy(schema))
    if isinstance(out, dict):
        out["x-guidance"] = {**_JSON_OPTIONS, **out.get("x-guidance", {})}
    return out


def _call_body(tool: Tool) -> str:
    """A call after its opening tag: name, arguments valid for the tool's schema, closing tag."""
    head = f'\n{{"name": {json.dumps(tool.name)}, "arguments": '
    tail = "}\n" + CALL_CLOSE
    return f"{json.dumps(head)} %json {json.dumps(closed(tool.parameters))} {json.dumps(tail)}"


# any text that does not open a call, nor write markup like the tool format's: it does not start with "<" and holds
# no "<tool", no tag with "_" or "-" in its name and no call's '"arguments"' (after seeing calls, the 135M model
# answered "<user_message>\n...", "<user>lookup_country(...", '{"name": "lookup_country", "arguments" :
# ...', measured on `deal bench agent`)
_NO_CALL_TEXT = 'TEXT: /(.|\\n)*/ & ~/(\\s*<|(.|\\n)*(<tool|<[A-Za-z]+[-_]|"arguments"))(.|\\n)*/'


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
        lines += [f"open[lazy]: TEXT {json.dumps(CALL_OPEN)}", _NO_CALL_TEXT]
    return "\n".join(lines)


def json_grammar(schema: dict[str, Any]) -> str:
    return f"start: %json {json.dumps(closed(schema))}"


def grammar_for(request: Request) -> str | None:
    """The grammar a request's output must match, or None for free text."""
    fmt = request.response_format
    mode, name = request.choice
    if request.tools and mode != "none":
        return tool_grammar(request.tools, mode, name, request.parallel_tool_calls)
    if request.tools and (fmt is None or fmt.type == "text"):  # "none": text that never opens a call
        return f"start: TEXT\n{_NO_CALL_TEXT}"
    if fmt is not None and fmt.type == "json_schema":
        return json_grammar(fmt.json_schema or {})
    if fmt is not None and fmt.type == "json_object":
        return json_grammar({"type": "object"})
    return None


def open_strings(schema: Any) -> list[str]:
    """The schema's string rules the budget's closing path cannot finish (`pattern`, `format`): it closes strings,
    numbers, arrays, objects and enums, but only the model can write a string a regex or a format accepts."""
    found, stack = set(), [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            found |= {f"{k}: {v}" if k == "format" else k for k, v in node.items()
                      if k in ("pattern", "format") and isinstance(v, str)}
            stack.extend(v for k, v in node.items() if k not in ("enum", "const", "default", "examples"))
        elif isinstance(node, list):
            stack.extend(node)
    return sorted(found)


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
    for body in TOOL_CALLS.findall(text[first:]):
        data = json.loads(body)
        if (data["name"], data["arguments"]) not in calls:
            calls.append((data["name"], data["arguments"]))
    return text[:first].rstrip(), calls


def format_tool_call(call: ToolCall) -> str:
    """A call as the model writes it (for templates without native tool support)."""
    body = json.dumps({"name": call.name, "arguments": call.arguments}, ensure_ascii=False)
    return f"{CALL_OPEN}\n{body}\n{CALL_CLOSE}"
