"""Continuous batching: concurrent one-prompt calls share a search, and each answer equals the call made alone."""

from __future__ import annotations

import asyncio
import copy
import threading
import time

import pytest

from deal_core import DeAL
from deal_core.backends.table import PAD, TableBackend
from deal_core.errors import GenerationTimeout, RewardError
from deal_core.request import Request, ResponseFormat
from deal_core.rewards import Keywords, Regex

PERSON = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 8}, "age": {"type": "integer"}},
          "required": ["name", "age"]}
CALLS = [
    ("Hello there", dict(rewards=Keywords(["the"]), max_new_tokens=12)),
    ("Once upon a time", dict(max_new_tokens=7, stop=["e"])),
    ("Tell me about dogs", dict(rewards=Keywords(["dog", "park"]), max_new_tokens=16)),
    (Request.of("Who is Ann?", response_format=ResponseFormat(type="json_schema", json_schema=PERSON)),
     dict(max_new_tokens=30)),
    ("Why is the sky blue?", dict(rewards=Keywords(["sky"]), max_new_tokens=5)),
    ("A short poem", dict(max_new_tokens=20, reward_weight=5.0)),
]


def test_staggered_concurrent_calls_each_equal_the_call_alone(tiny_long_lm, vowels, monkeypatch):
    from deal_core.search import DeALSearch

    joined = []  # rows already running when a prompt was admitted
    admit = DeALSearch.admit

    def spy(self, *args, **kwargs):
        joined.append(len(self.rows))
        return admit(self, *args, **kwargs)

    monkeypatch.setattr(DeALSearch, "admit", spy)
    base = dict(top_k=4, lookahead=3)
    alone = [DeAL(tiny_long_lm, rewards=vowels, **base).generate(p, **kw) for p, kw in CALLS]
    shared = DeAL(tiny_long_lm, rewards=vowels, batching=True, **base)
    results: dict[int, object] = {}

    def call(i: int) -> None:
        time.sleep(0.02 * i)  # arrive while others are mid-search: joined at a step boundary
        prompt, kw = CALLS[i]
        results[i] = shared.generate(prompt, **kw)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(CALLS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    for i, expected in enumerate(alone):
        got = results[i]
        assert (got.token_ids, got.finish_reason, got.text) == (expected.token_ids, expected.finish_reason,
                                                                 expected.text), CALLS[i]
        assert got.rewards == pytest.approx(expected.rewards)
    assert results[3].parsed == alone[3].parsed
    assert any(joined[len(CALLS):]), joined  # some prompt joined a search mid-way (continuous batching)
    # one search served them: fewer forward passes than the calls made alone
    assert max(r.stats.forward_passes for r in results.values()) < sum(r.stats.forward_passes for r in alone)


def test_streams_and_async_calls_share_the_search_too(tiny_long_lm):
    deal = DeAL(tiny_long_lm, batching=True, top_k=3, lookahead=2, max_new_tokens=10)
    solo = DeAL(tiny_long_lm, top_k=3, lookahead=2, max_new_tokens=10)

    async def both():
        streams = [await deal.astream(p) for p in ("Hello there", "Once upon a time")]

        async def drain(stream):
            return "".join([d async for d in stream]), stream

        drained = await asyncio.gather(*(drain(s) for s in streams), deal.agenerate("Tell me about dogs"))
        return drained

    (a, sa), (b, sb), c = asyncio.run(both())
    assert a == sa.result.text == solo.generate("Hello there").text
    assert b == sb.result.text == solo.generate("Once upon a time").text
    assert c.token_ids == solo.generate("Tell me about dogs").token_ids


def test_a_failing_reward_or_a_timeout_ends_only_its_own_call(tiny_long_lm):
    deal = DeAL(tiny_long_lm, batching=True, top_k=3, lookahead=2, max_new_tokens=12)
    solo = DeAL(tiny_long_lm, top_k=3, lookahead=2, max_new_tokens=12)
    outcome: dict[str, object] = {}

    class Boom(Regex):
        bounded_cost = True  # shares the search: its failure must end only its own call

        def _score(self, prompts, texts, is_final):
            raise RewardError("boom")

    def run(name, prompt, **kw):
        try:
            outcome[name] = deal.generate(prompt, **kw)
        except Exception as exc:  # noqa: BLE001
            outcome[name] = exc

    threads = [threading.Thread(target=run, args=("ok", "Hello there")),
               threading.Thread(target=run, args=("bad", "Hi"), kwargs={"rewards": Boom(pattern="x")}),
               threading.Thread(target=run, args=("slow", "Yo"), kwargs={"timeout_s": 1e-9})]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert isinstance(outcome["bad"], RewardError)
    assert isinstance(outcome["slow"], GenerationTimeout)
    assert outcome["ok"].token_ids == solo.generate("Hello there").token_ids


def test_a_call_whose_pattern_sets_its_reward_cost_gets_a_search_of_its_own(tiny_long_lm, monkeypatch):
    """A Regex or JsonSchema reward costs what the caller's pattern makes it cost: its call never shares a step."""
    from deal_core.search import DeALSearch

    searches: dict[str, DeALSearch] = {}  # the objects themselves: an id could be reused once one is freed
    admit = DeALSearch.admit

    def spy(self, prompts, *args, **kwargs):
        searches[prompts[0].request] = self
        return admit(self, prompts, *args, **kwargs)

    monkeypatch.setattr(DeALSearch, "admit", spy)
    deal = DeAL(tiny_long_lm, batching=True, top_k=3, lookahead=2, max_new_tokens=12)
    calls = {"Hello there": {}, "Tell me about dogs": {"rewards": Keywords(["dog"])},
             "Say aaaa": {"rewards": Regex(pattern="^(a|aa)+$")}}
    start = threading.Barrier(len(calls))

    def run(prompt: str) -> None:
        start.wait()
        deal.generate(prompt, **calls[prompt])

    threads = [threading.Thread(target=run, args=(p,)) for p in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    by_prompt = {p: next(v for k, v in searches.items() if p in k) for p in calls}
    assert all(by_prompt["Say aaaa"] is not by_prompt[p] for p in ("Hello there", "Tell me about dogs")), searches


def test_a_closed_stream_leaves_the_shared_search(tiny_long_lm):
    deal = DeAL(tiny_long_lm, batching=True, top_k=3, lookahead=2, max_new_tokens=40)
    stream = deal.stream("Tell me a long story")
    next(iter(stream))
    stream.close()
    # the next call runs on: the cancelled prompt's rows were dropped, not left to finish
    result = deal.generate("Hello there", max_new_tokens=6)
    assert result.token_ids == DeAL(tiny_long_lm, top_k=3, lookahead=2).generate("Hello there",
                                                                                    max_new_tokens=6).token_ids


def test_sampled_calls_keep_their_own_random_stream(tiny_long_lm):
    deal = DeAL(tiny_long_lm, batching=True, top_k=3, lookahead=2, max_new_tokens=8)
    solo = DeAL(tiny_long_lm, top_k=3, lookahead=2, max_new_tokens=8)
    out: dict[int, list[int]] = {}

    def run(i: int) -> None:
        out[i] = deal.generate("Hello there", temperature=1.0, seed=7).token_ids

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    expected = solo.generate("Hello there", temperature=1.0, seed=7).token_ids
    assert [out[i] for i in range(3)] == [expected] * 3


def test_an_engine_whose_rows_depend_on_their_batch_runs_one_prompt_at_a_time(vowels, monkeypatch):
    """`batch_invariant=False` (llama.cpp): concurrent calls and the prompts of a batch never share a search or a
    pass; they run in order of arrival and each answer equals the call alone."""
    from deal_core.backends.table import TableBackend
    from deal_core.search import DeALSearch

    lm = TableBackend(batch_invariant=False)
    running = []  # prompts already in a search when one was admitted
    admit = DeALSearch.admit

    def spy(self, prompts, *args, **kwargs):
        running.append(len(self.rows) + len(prompts) - 1)
        return admit(self, prompts, *args, **kwargs)

    monkeypatch.setattr(DeALSearch, "admit", spy)
    prompts = ["The dog runs in the park", "a red ball", "the big tree and the blue sky", "a kid"]
    alone = [DeAL(lm, rewards=vowels, use_chat_template=False, top_k=3, lookahead=2).generate(p, max_new_tokens=9)
             for p in prompts]
    shared = DeAL(lm, rewards=vowels, use_chat_template=False, top_k=3, lookahead=2, batching=True)
    results: dict[int, object] = {}
    order: list[int] = []

    def call(i: int) -> None:
        time.sleep(0.01 * i)
        results[i] = shared.generate(prompts[i], max_new_tokens=9)
        order.append(i)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert [results[i].token_ids for i in range(len(prompts))] == [r.token_ids for r in alone]
    batch = DeAL(lm, rewards=vowels, use_chat_template=False, top_k=3, lookahead=2).generate_batch(
        prompts, max_new_tokens=9)
    assert [r.token_ids for r in batch] == [r.token_ids for r in alone]
    assert running and set(running) == {0}, running  # never admitted next to another prompt
    assert lm.held == 0

class Views(TableBackend):
    """The table engine with `Isolating` views (llama.cpp's are KV caches of their own): records each view, how many
    were open at once and the rows each still held when it was closed. A pass with a row holding <pad> fails (no
    answer has one)."""

    max_isolated = 2
    capacity = (1000, 100_000)
    prefill_piece = 4

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.opened, self.open_at_once, self.parent, self.held_at_close = [], 0, None, None

    def isolated(self):
        view = copy.copy(self)
        view.parent, view.held = self, 0
        self.opened.append(view)
        self.open_at_once = max(self.open_at_once, sum(v.parent is not None for v in self.opened))
        return view

    def close(self):
        self.held_at_close, self.parent = self.held, None

    def step(self, handles, tokens):
        time.sleep(0.002)  # a pass takes a while, as on a real engine: the calls overlap
        if any(PAD in h.live for h in handles):
            raise RuntimeError("the engine failed mid-pass")
        return super().step(handles, tokens)


def _five_at_once(lm, vowels, **options) -> bool:
    """Five concurrent calls on `lm` with `options`: whether each answer equals the call alone."""
    prompts = ["The dog runs in the park", "a red ball", "the big tree and the blue sky", "a kid", "the sun"]
    solo = DeAL(lm, rewards=vowels, use_chat_template=False, top_k=3, lookahead=2)
    alone = [solo.generate(p, max_new_tokens=12).token_ids for p in prompts]
    assert lm.opened == []  # a call alone runs on the engine's own cache
    shared = DeAL(lm, rewards=vowels, use_chat_template=False, top_k=3, lookahead=2, batching=True, **options)
    results: dict[int, object] = {}
    arrive = threading.Barrier(len(prompts))

    def call(i: int) -> None:
        arrive.wait()
        results[i] = shared.generate(prompts[i], max_new_tokens=12)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(prompts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return [results[i].token_ids for i in range(len(prompts))] == alone


def test_isolated_calls_on_an_isolating_engine_take_turns_in_views_of_their_own(vowels):
    """`Isolating` (llama.cpp's `isolated()` views, each a KV cache of its own) with `isolate_calls`: every concurrent
    call runs in a view of its own, at most `max_isolated` open at once (later calls wait), each closed when its call
    ends; answers equal the call alone. A table engine stands in for the views here (tests/integration/
    test_llamacpp.py: llama.cpp)."""
    from deal_core.backends import Isolating

    lm = Views(batch_invariant=False)
    assert isinstance(lm, Isolating)
    assert _five_at_once(lm, vowels, isolate_calls=True)
    assert len(lm.opened) == 5 and lm.open_at_once == 2
    assert all(v.parent is None and v.held_at_close == 0 for v in lm.opened)  # every view went back, empty


@pytest.mark.parametrize("capacity, views", [((1000, 100_000), 1), ((5, 100_000), 2)])
def test_calls_with_the_same_settings_share_a_view_while_they_fit_in_it(vowels, capacity, views):
    """Without `isolate_calls` (the default) calls with the same search settings share one search's passes in one
    view, as many as its `capacity` (sequences, cells) holds by their footprint (top_k + 2 = 5 sequences each
    here): with room for one call, a second view opens beside the first (`max_isolated` at most). The table engine's rows
    do not depend on their batch, so the answers still equal the calls alone (on llama.cpp they may differ by its
    rounding)."""
    lm = Views(batch_invariant=False)
    lm.capacity = capacity
    assert _five_at_once(lm, vowels)
    assert lm.open_at_once == views
    assert all(v.parent is None and v.held_at_close == 0 for v in lm.opened)


def test_a_pass_that_fails_in_a_view_ends_its_call_and_returns_the_view_empty(vowels):
    lm = Views(batch_invariant=False)
    shared = DeAL(lm, rewards=vowels, use_chat_template=False, top_k=3, lookahead=2, batching=True,
                  isolate_calls=True)
    expected = DeAL(lm, rewards=vowels, use_chat_template=False, top_k=3, lookahead=2).generate(
        "a red ball", max_new_tokens=12).token_ids
    errors, results = [], []
    arrive = threading.Barrier(2)

    def call(prompt: str) -> None:
        arrive.wait()
        try:
            results.append(shared.generate(prompt, max_new_tokens=12).token_ids)
        except RuntimeError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=call, args=(p,)) for p in ("<pad> the dog runs", "a red ball")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == ["the engine failed mid-pass"] and results == [expected]
    assert len(lm.opened) == 2 and all(v.parent is None and v.held_at_close == 0 for v in lm.opened)


def test_a_long_prompt_is_prefilled_a_piece_per_turn_beside_running_calls(vowels):
    """A prompt longer than the engine's `prefill_piece` (4 tokens on `Views`) joins a piece per turn of the loop,
    beside a call already running; the answers equal the calls alone, and a long-prompt call that runs out of time
    gets its timeout and leaves its view empty."""
    lm = Views(batch_invariant=False)
    long_prompt = "the big tree and the blue sky with a kid and a dog in the park"
    solo = DeAL(lm, rewards=vowels, use_chat_template=False, top_k=3, lookahead=2)
    alone = [solo.generate(p, max_new_tokens=12).token_ids for p in ("a red ball", long_prompt)]
    shared = DeAL(lm, rewards=vowels, use_chat_template=False, top_k=3, lookahead=2, batching=True)
    order: list[str] = []
    admit = shared.runner._loop._prefill

    def spy(key):
        order.append("piece")
        return admit(key)

    shared.runner._loop._prefill = spy
    results: dict[str, list[int]] = {}
    first = threading.Thread(target=lambda: results.update(a=shared.generate("a red ball", max_new_tokens=12)
                                                           .token_ids))
    first.start()
    time.sleep(0.05)
    results["b"] = shared.generate(long_prompt, max_new_tokens=12).token_ids
    first.join(timeout=60)
    assert [results["a"], results["b"]] == alone
    assert len(order) >= len(lm.encode_text(long_prompt)) // 4 - 1
    with pytest.raises(GenerationTimeout):
        shared.generate(long_prompt, max_new_tokens=12, timeout_s=0.004)
    assert all(v.parent is None and v.held_at_close == 0 for v in lm.opened)
