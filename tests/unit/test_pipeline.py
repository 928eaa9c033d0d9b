"""The call pipeline: every model call runs inside the runner (under its admission and isolation), each result owns
a snapshot of its counters, a request is validated once, and one decoder per server shares one run loop."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest

from deal_core import DeAL
from deal_core.backends.current import current_backend
from deal_core.backends.table import TableBackend
from deal_core.request import Request
from deal_core.rewards import Judge, Reward

MODEL_VERBS = ("prefill", "step", "extend", "generate", "continuation_logprobs", "answer_logodds")


@dataclass(eq=False)
class CountingTable(TableBackend):
    """The table engine, counting its model calls made inside and outside the runner."""

    inside: int = 0
    outside: list[str] = field(default_factory=list)

    def __getattribute__(self, name: str) -> Any:
        attr = object.__getattribute__(self, name)
        if name in MODEL_VERBS:
            def counted(*args: Any, **kwargs: Any) -> Any:
                if current_backend() is None:
                    self.outside.append(name)
                else:
                    object.__setattr__(self, "inside", self.inside + 1)
                return attr(*args, **kwargs)
            return counted
        return attr


class ProposesNo(Reward):
    """Proposes the answer "no" for every request (as `Safety` proposes refusals for a flagged one)."""

    kind: ClassVar[str] = "proposes_no"

    def _score(self, prompts: Sequence[str], texts: Sequence[str], is_final: Sequence[bool]) -> list[float]:
        return [float("no" in t) for t in texts]

    def proposals(self, request: Any) -> list[str]:
        return ["no"]


def _decoders(lm: TableBackend) -> list[DeAL]:
    rewards = [ProposesNo(), Judge(question="Is it short?")]
    return [DeAL(lm, rewards=rewards, batching=b, top_k=3, lookahead=2, max_new_tokens=6) for b in (False, True)]


def test_no_model_call_is_made_outside_the_runner():
    lm = CountingTable()
    for deal in _decoders(lm):
        deal.generate("a b c")
        deal.generate_batch(["a b", "c d e"])
        list(deal.stream("b c"))
        deal.greedy("c a")
        threads = [threading.Thread(target=deal.generate, args=(f"a {i}",)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert lm.inside > 0
    assert lm.outside == [], f"model calls outside the runner: {sorted(set(lm.outside))}"


def test_a_result_owns_a_snapshot_of_its_counters():
    deal = DeAL(TableBackend(), top_k=3, lookahead=2, max_new_tokens=5)
    a, b = deal.generate_batch(["a b", "c d e"])
    assert a.stats is not b.stats
    before = a.stats.model_dump()
    deal.generate_batch(["a b", "c d e"])
    assert a.stats.model_dump() == before
    greedy = deal.greedy("a b")
    assert greedy.stats.steps == len(greedy.token_ids) + (greedy.finish_reason == "eos")


def test_a_request_is_validated_once(monkeypatch):
    request = Request.of("a b c", max_new_tokens=4)
    assert Request.of(request) is request  # nothing new to check: the same object
    checked = []
    validate, init = Request.model_validate.__func__, Request.__init__

    def counting_validate(cls, *args, **kwargs):
        checked.append("model_validate")
        return validate(cls, *args, **kwargs)

    def counting_init(self, *args, **kwargs):
        checked.append("__init__")
        init(self, *args, **kwargs)

    monkeypatch.setattr(Request, "model_validate", classmethod(counting_validate))
    monkeypatch.setattr(Request, "__init__", counting_init)
    DeAL(TableBackend(), top_k=2, lookahead=1).generate(request)
    assert checked == []


def test_server_endpoints_share_one_run_loop():
    deal = DeAL(TableBackend())
    chat = deal.variant(batching=True)
    raw = chat.variant(rewards=None, use_chat_template=False)
    assert chat.runner is raw.runner and chat.runner is not deal.runner
    assert raw.use_chat_template is False and chat.lm is deal.lm


@pytest.mark.parametrize("batching", [False, True])
def test_answers_are_unchanged_by_where_model_calls_run(batching):
    """Counting changes nothing: the same tokens as the plain table engine."""
    plain = DeAL(TableBackend(), rewards=[ProposesNo()], top_k=3, lookahead=2, max_new_tokens=6)
    counted = DeAL(CountingTable(), rewards=[ProposesNo()], batching=batching, top_k=3, lookahead=2,
                   max_new_tokens=6)
    for prompt in ("a b c", "c a", "b"):
        assert counted.generate(prompt).token_ids == plain.generate(prompt).token_ids
