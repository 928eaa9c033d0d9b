"""Output constraints in the search: masks reach candidates and lookaheads, forks and rollbacks stay in step.

An oracle (the plain reference DeAL over masked distributions) checks the search with a Python constraint on the
pure-Python backend; llguidance grammars (tool calls, JSON schemas) run on the tiny random transformers model,
whose outputs must parse and validate whatever the weights prefer.
"""

from __future__ import annotations

import json
import random

import jsonschema
import numpy as np
import pytest

from deal_core import DeAL
from deal_core.config import make_config
from deal_core.constraint import ConstraintError, Matcher, grammar_for
from deal_core.errors import ConfigError, PromptError
from deal_core.prompts import EncodedPrompt
from deal_core.request import Message, Request, ResponseFormat, Tool
from deal_core.rewards import Keywords, as_reward_sum
from deal_core.search import DeALSearch
from deal_core.backends.table import EOS, WORDS, TableBackend, masked, next_logprobs
from tests.unit.test_search_oracle import COMBOS, random_case, reference_deal


class Alternating:
    """A Python constraint over the table vocabulary: a token may not repeat the previous token's parity, and the
    answer is complete after three tokens (end-of-sequence is allowed only then)."""

    def __init__(self, tokens: list[int] | None = None):
        self.tokens = tokens or []

    def fork(self) -> Alternating:
        return Alternating(list(self.tokens))

    def consume(self, token: int) -> None:
        assert self.ok(self.tokens)[token], (self.tokens, token)
        self.tokens.append(token)

    def rollback(self, n: int) -> None:
        assert n <= len(self.tokens)
        del self.tokens[len(self.tokens) - n:]

    @staticmethod
    def ok(tokens: list[int]) -> list[bool]:
        out = [t > 1 and (not tokens or t % 2 != tokens[-1] % 2) for t in range(len(WORDS))]
        out[EOS] = len(tokens) >= 3
        return out

    closed_early = False

    def allowed(self, budget: int | None = None) -> np.ndarray:
        bits = np.packbits(np.array(self.ok(self.tokens) + [False] * (-len(WORDS) % 32)), bitorder="little")
        return bits.view(np.int32)

    @property
    def accepting(self) -> bool:
        return len(self.tokens) >= 3


@pytest.mark.parametrize("seed", range(12))
def test_constrained_search_matches_the_oracle_over_masked_distributions(seed):
    backend = TableBackend()
    rng = random.Random(seed)
    prompt = " ".join(rng.choice(WORDS[2:]) for _ in range(3))
    reward = Keywords(keywords=rng.sample(["dog", "park", "ball", "sky", "tree"], 2))
    case = random_case(seed)
    ids = backend.encode_text(prompt)
    n = len(ids)
    expected, reason = reference_deal(
        lambda seq: masked(next_logprobs(seq), Alternating.ok(seq[n:])), backend.decode, {EOS}, ids, prompt, reward,
        top_k=case["top_k"], lookahead=case["lookahead"], commit=case["commit"], weight=case["reward_weight"],
        max_new_tokens=case["max_new_tokens"])
    for combo in COMBOS:
        config = make_config(None, **case, **combo)
        search = DeALSearch(backend, config)
        search.admit([EncodedPrompt(ids, prompt)], [config], [as_reward_sum(reward)], [Alternating()])
        finished = {}
        while search.live:
            finished.update(search.step().finished)
        assert (finished[0].tokens, finished[0].reason) == (expected, reason), (case, combo)
        assert all(a % 2 != b % 2 for a, b in zip(expected, expected[1:]))
        assert finished[0].complete == (len(expected) >= 3)


WEATHER = Tool(name="get_weather", description="Weather in a city", parameters={
    "type": "object", "properties": {"city": {"type": "string", "maxLength": 12},
                                     "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
    "required": ["city"]})
ADD = Tool(name="add", description="Add two integers", parameters={
    "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]})
PERSON = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 10},
                                           "age": {"type": "integer", "minimum": 0, "maximum": 150}},
          "required": ["name", "age"]}


def _ask(**fields) -> Request:
    return Request(messages=(Message(role="user", content="What is the weather in Oslo?"),), **fields)


@pytest.mark.parametrize("combo", COMBOS)
def test_tool_calls_are_valid_whatever_a_random_model_prefers(tiny_long_lm, vowels, combo):
    deal = DeAL(tiny_long_lm, rewards=vowels, max_new_tokens=80, top_k=4, lookahead=3)
    tools = {t.name: t for t in (WEATHER, ADD)}
    for choice in ("required", "add", {"type": "function", "function": {"name": "get_weather"}}):
        result = deal.generate(_ask(tools=(WEATHER, ADD), tool_choice=choice), **combo)
        # a random model keeps adding parallel calls until the budget ends: the complete ones stand
        assert result.finish_reason in ("tool_calls", "length") and result.tool_calls, result.raw_text
        single = deal.generate(_ask(tools=(WEATHER, ADD), tool_choice=choice, parallel_tool_calls=False), **combo)
        assert single.finish_reason == "tool_calls" and len(single.tool_calls) == 1
        assert single.raw_text.startswith("<tool_call>\n{") and single.raw_text.endswith("}\n</tool_call>")
        for call in result.tool_calls:
            jsonschema.validate(call.arguments, tools[call.name].parameters)
            assert call.id.startswith("call_")
        if choice != "required":
            assert {c.name for c in result.tool_calls} == {choice if isinstance(choice, str) else "get_weather"}
        assert len({c.id for c in result.tool_calls}) == len(result.tool_calls)


def test_reuse_and_pruning_do_not_change_constrained_outputs(tiny_long_lm, vowels):
    deal = DeAL(tiny_long_lm, rewards=vowels, max_new_tokens=60, top_k=4, lookahead=3, commit=2)
    request = _ask(response_format=ResponseFormat(type="json_schema", json_schema=PERSON))
    answers = {json.dumps(deal.generate(request, **combo).parsed) for combo in COMBOS}
    assert len(answers) == 1
    jsonschema.validate(json.loads(answers.pop()), PERSON)


def test_json_outputs_parse_and_validate_in_batches_streams_and_sampling(tiny_long_lm, vowels):
    deal = DeAL(tiny_long_lm, rewards=vowels, max_new_tokens=60, top_k=3, lookahead=2)
    person = _ask(response_format=ResponseFormat(type="json_schema", json_schema=PERSON))
    flags = {"type": "object", "properties": {"ok": {"type": "boolean"}, "n": {"type": "integer", "maximum": 9}},
             "required": ["ok", "n"]}
    other = _ask(response_format=ResponseFormat(type="json_schema", json_schema=flags))
    batch = deal.generate_batch([person, other, _ask()])
    jsonschema.validate(batch[0].parsed, PERSON)
    jsonschema.validate(batch[1].parsed, flags)
    assert batch[1].text == json.dumps(batch[1].parsed)  # canonical spacing
    assert batch[2].parsed is None
    assert batch[0].token_ids == deal.generate(person).token_ids  # a row's constraint does not leak into others
    stream = deal.stream(person)
    assert json.loads("".join(stream)) == stream.result.parsed
    for seed in range(3):
        jsonschema.validate(deal.generate(person, temperature=1.0, seed=seed).parsed, PERSON)


def test_auto_tool_choice_allows_text_or_calls_and_streams_text_only(tiny_long_lm, vowels):
    deal = DeAL(tiny_long_lm, rewards=vowels, max_new_tokens=40, top_k=3, lookahead=2)
    result = deal.generate(_ask(tools=(WEATHER,)))
    assert "<tool_call>" not in result.text
    assert result.finish_reason in ("tool_calls", "eos", "length")
    stream = deal.stream(_ask(tools=(WEATHER,)))
    assert "".join(stream) == stream.result.text


def test_a_matcher_rolls_back_to_the_state_of_a_fresh_one(tiny_lm):
    grammar = grammar_for(_ask(response_format=ResponseFormat(type="json_schema", json_schema=PERSON)))
    ids = tiny_lm.encode_text('{"name": "Ann", "age": 31}', special_tokens=False)

    def fresh(k: int) -> Matcher:
        m = Matcher.build(tiny_lm.grammar_tokenizer(), grammar)
        for t in ids[:k]:
            m.consume(t)
        return m

    full = fresh(len(ids))
    assert full.accepting
    for back in range(len(ids) + 1):
        rolled = full.fork()
        rolled.rollback(back)
        assert (rolled.allowed() == fresh(len(ids) - back).allowed()).all()
    assert full.accepting  # forks are independent


def test_bad_tool_requests_say_what_to_change(tiny_long_lm):
    deal = DeAL(tiny_long_lm, max_new_tokens=40)
    user = Message(role="user", content="Hi")
    cases = [
        (dict(tools=(WEATHER,), tool_choice="sometimes"), "not one of the tools"),
        (dict(tools=(WEATHER,), tool_choice={"type": "function"}), "is not one of 'auto'"),
        (dict(tools=(WEATHER,), tool_choice=3), "is not one of 'auto'"),
        (dict(tool_choice="required"), "needs tools"),
        (dict(tools=(WEATHER, WEATHER)), "share a name"),
        (dict(tools=(WEATHER,), response_format=ResponseFormat(type="json_object")), "cannot both"),
    ]
    for fields, message in cases:
        with pytest.raises(ValueError, match=message):
            Request(messages=(user,), **fields)
    with pytest.raises(ValueError, match="type 'object'"):
        Tool(name="f", parameters={"type": "string"})
    with pytest.raises(ValueError, match="needs a schema"):
        ResponseFormat(type="json_schema")
    orphan = ({"role": "user", "content": "Hi"}, {"role": "tool", "content": "42", "tool_call_id": "x"})
    with pytest.raises(PromptError, match="no assistant message before it made a tool call"):
        Request.of(list(orphan))
    made = {"role": "assistant", "content": None, "tool_calls": [{"id": "a", "function": {"name": "f"}}]}
    with pytest.raises(PromptError, match="answers tool call 'x'"):
        Request.of([orphan[0], made, orphan[1]])
    broken = Tool(name="f", parameters={"type": "object", "properties": {"a": {"type": "strnig"}}})
    with pytest.raises(ConfigError, match="tool 'f' cannot be enforced"):
        deal.generate(_ask(tools=(broken,), tool_choice="f"))
    # a turn that must call gets at least its shortest complete call plus room per argument (tool_turns.py)
    squeezed = deal.generate(_ask(tools=(WEATHER,), tool_choice="required"), max_new_tokens=5)
    assert len(squeezed.token_ids) > 5 and squeezed.tool_calls, squeezed.raw_text
    long = {"type": "object", "properties": {"text": {"type": "string", "minLength": 5000}}, "required": ["text"]}
    with pytest.raises(ConstraintError, match="before its JSON answer was complete"):
        deal.generate(_ask(response_format=ResponseFormat(type="json_schema", json_schema=long)))
    with pytest.raises(ConfigError, match="without output constraints"):
        deal.greedy(_ask(tools=(WEATHER,), tool_choice="required"))


def test_a_long_winded_model_still_closes_its_json_within_the_budget(tiny_long_lm):
    """The random model never closes a free string by itself; near the end of the budget the closing path (close the
    string, fill required keys minimally, close brackets) takes over, and the answer says "length"."""
    deal = DeAL(tiny_long_lm, max_new_tokens=30, top_k=3, lookahead=2)
    free = {"type": "object", "properties": {"story": {"type": "string"}, "tags": {"type": "array",
            "items": {"type": "string"}}, "score": {"type": "integer"}}, "required": ["story", "tags", "score"]}
    for fmt in (ResponseFormat(type="json_schema", json_schema=free), ResponseFormat(type="json_object")):
        for budget in (24, 32):
            result = deal.generate(_ask(response_format=fmt), max_new_tokens=budget)
            assert len(result.token_ids) <= budget
            assert result.finish_reason == "length" and result.parsed is not None, result.text
            if fmt.type == "json_schema":
                jsonschema.validate(result.parsed, free)
    with pytest.raises(ConfigError, match=r"shortest complete form takes \d+ tokens"):
        deal.generate(_ask(response_format=ResponseFormat(type="json_schema", json_schema=free)), max_new_tokens=12)
    calls = deal.generate(_ask(tools=(WEATHER, ADD), tool_choice="required"), max_new_tokens=40)
    assert calls.tool_calls and all(c.name in ("get_weather", "add") for c in calls.tool_calls)


ORDER = {"type": "object", "required": ["customer", "items"], "properties": {
    "customer": {"type": "string"},
    "items": {"type": "array", "items": {"type": "object", "required": ["name", "quantity"], "properties": {
        "name": {"type": "string"}, "quantity": {"type": "integer"}}}}}}


NUMBERS = {"type": "object", "properties": {"n": {"type": "integer", "multipleOf": 7},
                                            "x": {"type": "number", "multipleOf": 0.5}}, "required": ["n", "x"]}
OPEN_STRINGS = {"email": {"type": "string", "format": "email"}, "code": {"type": "string", "pattern": "ab+c"}}


@pytest.mark.parametrize(("schema", "span"), [(ORDER, 40), (NUMBERS, 16)], ids=["arrays of objects", "multipleOf"])
def test_json_closes_at_every_budget_from_the_shortest_form_up(tiny_long_lm, schema, span):
    """A model that keeps adding items (and never closes a string) still gets valid JSON at every budget: near the
    end no token may lengthen the way out past the budget (Matcher._guarded). Numbers that must be a `multipleOf`
    are closed too (issue 22 item 7: the random model writes long digit runs)."""
    deal = DeAL(tiny_long_lm, top_k=3, lookahead=2)
    fmt = ResponseFormat(type="json_schema", json_schema=schema)
    shortest = len(Matcher.build(tiny_long_lm.grammar_tokenizer(), grammar_for(_ask(response_format=fmt)))
                   .closing_path(4096))
    for budget in range(shortest, shortest + span, 3):
        result = deal.generate(_ask(response_format=fmt), max_new_tokens=budget)
        assert len(result.token_ids) <= budget
        jsonschema.validate(result.parsed, schema)


@pytest.mark.parametrize("field", sorted(OPEN_STRINGS))
def test_a_string_only_the_model_can_finish_is_a_typed_error_naming_its_rule(tiny_long_lm, field):
    """Issue 22 item 7: a `format` or `pattern` string has no closing path (only the model can write an e-mail
    address): a budget reached inside one is a ConstraintError that names the rule, never a malformed answer."""
    schema = {"type": "object", "properties": {field: OPEN_STRINGS[field]}, "required": [field]}
    fmt = ResponseFormat(type="json_schema", json_schema=schema)
    rule = "format: email" if field == "email" else "pattern"
    with pytest.raises(ConstraintError, match=f"cannot close strings with {rule}"):
        DeAL(tiny_long_lm, top_k=3, lookahead=2).generate(_ask(response_format=fmt), max_new_tokens=16)
