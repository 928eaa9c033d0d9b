"""The engine: owns the backend and the run loop. One place admits calls into searches, steps them, times them out,
retires them and builds their results (and final rewards).

A call is one `Ticket` per prompt. Without batching the caller's thread drives a loop of its own (the prompts of a
batch call share one search); with batching (`DeAL(batching=True)`, the server) a worker thread drives one loop for
every one-prompt call in flight: at each step boundary it admits the waiting calls into the search the policy
(deal_core/scheduler.py) picks for them, steps the search the policy says is least served, hands each call the
update for its prompt, and retires a call when its prompt finishes, fails, times out or is cancelled. Each answer
equals the same call made alone (tests/unit/test_scheduler.py). On an engine whose rows depend on the rest of their
batch (`Backend.batch_invariant` False: llama.cpp) the batching worker still shares passes (`share`): calls with the
same search settings join one search in a view with a KV cache of its own (at most `max_isolated` views, each taking
calls while their rows and cells fit: `Loop.place`), and an answer may differ from the call alone by the engine's
rounding (measured: docs/results/serve_llamacpp.md). With `isolate_calls` (and outside the batching worker) such an
engine's prompts never share a pass or a cache: each call gets a search of its own in a view of its own, the
searches take turns step by step, the prompts of a batch call run one after another, and an answer does not depend
on what else is in flight.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from deal_core.answers import build_result, score_answers
from deal_core.backends.base import Backend, Isolating
from deal_core.backends.current import serving
from deal_core.loop import Event, Loop, Ticket, forget_all
from deal_core.preparing import Prepared
from deal_core.proposals import best_answer
from deal_core.result import GenerationResult
from deal_core.rewards.base import Reward

_OWN_CACHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_OWN_CACHES_LOCK = threading.Lock()


def _own_cache(lm: Backend) -> threading.Lock:
    """Held by the call whose private loop runs in the backend's own cache (the shared worker never does: its calls
    run in views). Per backend, whichever `DeAL` objects share it."""
    with _OWN_CACHES_LOCK:
        return _OWN_CACHES.setdefault(lm, threading.Lock())


class Runner:
    """Runs prepared calls on one backend: in the caller's thread, or (batching) on a shared worker."""

    def __init__(self, lm: Backend, batching: bool = False, isolate_calls: bool = False):
        self.lm, self.batching, self.isolate_calls = lm, batching, isolate_calls
        self._waiting: list[list[Ticket]] = []
        self._wake = threading.Condition()
        self._worker: threading.Thread | None = None
        self._loop = Loop(lm, isolate=True, share=not isolate_calls)
        self._session_views = threading.BoundedSemaphore(getattr(lm, "max_isolated", 1))

    @property
    def busy(self) -> bool:
        """Calls are waiting or in flight on the shared worker."""
        return bool(self._waiting or self._loop.searches)

    def run(self, prepared: Prepared) -> Iterator[list[Event]]:
        """Per step, the events of the call's prompts (each `(search, index, update)`); errors are raised."""
        tickets = [Ticket(prepared, slot) for slot in range(len(prepared.encoded))]
        if self.batching and len(tickets) == 1:
            for event in self._submit(tickets)[0]:
                yield [event]
            return
        # an engine whose rows depend on their batch: a call runs in its own cache unless another private loop holds
        # that, then in a view
        own = None if self.lm.batch_invariant else _own_cache(self.lm)
        mine = own is not None and own.acquire(blocking=False)
        try:  # an engine whose rows depend on their batch runs the prompts one after another
            for group in [tickets] if self.lm.batch_invariant else [[t] for t in tickets]:
                loop = Loop(self.lm, isolate=not mine)
                loop.admit(group)
                while loop.searches or any(t.events.qsize() for t in group):  # (an error at admission: no search)
                    if loop.searches:
                        loop.step()
                    yield [Ticket.take(t.events.get_nowait()) for t in group for _ in range(t.events.qsize())]
        finally:
            if mine:
                own.release()
            for ticket in tickets:
                ticket.cancelled.set()

    @contextmanager
    def session(self) -> Iterator[Backend]:
        """The backend for a call's model work outside a search (proposed answers, greedy decoding, final rewards),
        under the same isolation a search gets: an engine whose rows depend on their batch lends the call its own
        cache when no other call holds it, else an isolated view (else the call waits for the cache)."""
        if self.lm.batch_invariant:
            with serving(self.lm) as lm:
                yield lm
            return
        own = _own_cache(self.lm)
        if not own.acquire(blocking=not isinstance(self.lm, Isolating)):
            with self._session_views:  # at most max_isolated such views at once; later sessions wait
                view = self.lm.isolated()
                try:
                    with serving(view) as lm:
                        yield lm
                finally:
                    view.close()
            return
        try:
            with serving(self.lm) as lm:
                yield lm
        finally:
            own.release()

    def results(self, prepared: Prepared, done: list[Event]) -> list[GenerationResult]:
        """The call's results from its prompts' finishing events, in slot order, with their final rewards (each
        answer scored once, as a whole). A request its rewards propose answers for gets the best by the objective
        of the search's answer and those (deal_core/proposals.py). All of it runs in a session of the engine."""
        done = sorted(done, key=lambda e: e.slot)
        asks_model = any(prepared.proposed(e.slot) for e in done) or any(
            type(t.reward).use_backend is not Reward.use_backend for t in prepared.rewards.terms)
        with self.session() if asks_model else serving(self.lm) as lm:  # decoding text needs no isolation
            results = [build_result(lm, best_answer(lm, prepared, e.slot, e.finished), prepared, e.slot,
                                    e.search.stats, e.search.traces[e.index]) for e in done]
            score_answers(prepared.rewards, [prepared.encoded[e.slot].request for e in done], results)
            forget_all(lm, [prepared.rewards])
        return results

    def _submit(self, tickets: list[Ticket]) -> list[Ticket]:
        with self._wake:
            self._waiting.append(tickets)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="deal-engine", daemon=True)
                self._worker.start()
            self._wake.notify()
        return tickets

    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._waiting and not self._loop.searches:
                    if not self._wake.wait(timeout=30):
                        self._worker = None  # idle: the next call starts a fresh worker
                        return
                # the first waiting call is admitted when it fits (later calls wait their turn behind it)
                tickets = self._waiting.pop(0) if self._waiting and self._loop.place(self._waiting[0]) is not None else None
            if tickets is not None:  # every waiting call that fits is admitted before the next step
                if not all(t.cancelled.is_set() for t in tickets):
                    self._loop.admit(tickets)
            elif self._loop.searches:
                self._loop.step()
