"""The engine: owns the backend and the run loop. One place admits calls into searches, steps them, times them out,
retires them and builds their results (and final rewards).

A call is one `Ticket` per prompt. Without batching the caller's thread drives a loop of its own (the prompts of a
batch call share one search); with batching (`DeAL(batching=True)`, the server) a worker thread drives one loop for
every one-prompt call in flight: at each step boundary it admits the waiting calls into the search the policy
(deal_core/scheduler.py) picks for them, steps the search the policy says is least served, hands each call the
update for its prompt, and retires a call when its prompt finishes, fails, times out or is cancelled. Each answer
equals the same call made alone (tests/unit/test_scheduler.py). On an engine whose rows depend on the rest of their
batch (`Backend.batch_invariant` False: llama.cpp) prompts never share a pass or a cache: each call gets a search of
its own in a view with its own KV cache (`Isolating`; at most `max_isolated` at once, later calls wait their turn)
and the searches take turns step by step; the prompts of a batch call run one after another. An answer then does not
depend on what else is in flight.
"""

from __future__ import annotations

import math
import queue
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import NamedTuple

from deal_core.answers import build_result, score_answers
from deal_core.backends.base import Backend, Isolating
from deal_core.backends.current import serving
from deal_core.errors import GenerationTimeout, RewardError
from deal_core.preparing import Prepared
from deal_core.proposals import best_answer
from deal_core.result import GenerationResult
from deal_core.rewards.base import Reward, RewardSum
from deal_core.scheduler import FairShare, search_key
from deal_core.search import DeALSearch, Finished, StepUpdate


class Event(NamedTuple):
    """A step's news for one prompt of a call: the search serving it, its index there, its slot in the call."""

    search: DeALSearch
    index: int
    slot: int
    update: StepUpdate

    @property
    def tokens(self) -> list[int] | None:  # the best response so far, when this step changed it
        return self.update.tokens.get(self.index)

    @property
    def finished(self) -> Finished | None:
        return self.update.finished.get(self.index)


@dataclass(eq=False)
class Ticket:
    """Prompt `slot` of a prepared call: its step events arrive in `events`."""

    prepared: Prepared
    slot: int = 0
    events: queue.Queue = field(default_factory=queue.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.perf_counter)

    def __iter__(self) -> Iterator[Event]:
        """Each step's (search, index, update) for this prompt, until it finishes; raises its error."""
        try:
            while True:
                event = self.take(self.events.get())
                yield event
                if event.finished is not None:
                    return
        finally:
            self.cancelled.set()  # a consumer that stops early (closed stream, cancelled task) frees its rows

    @staticmethod
    def take(item: tuple) -> Event:
        kind, *payload = item
        if kind == "error":
            raise payload[0]
        return Event(*payload)

    def time_left(self) -> float:
        timeout = self.prepared.config.timeout_s
        return math.inf if timeout is None else timeout - (time.perf_counter() - self.started)

    def timed_out(self, steps: int) -> GenerationTimeout:
        return GenerationTimeout(f"search exceeded timeout_s={self.prepared.config.timeout_s} after {steps} steps; "
                                 "raise timeout_s or lower max_new_tokens/top_k/lookahead")


class Loop:
    """The searches in flight and the tickets each serves: admit, step, time out, retire."""

    def __init__(self, lm: Backend, isolate: bool = False):
        self.lm = lm
        self.searches: dict[tuple, tuple[DeALSearch, dict[int, Ticket]]] = {}
        self.policy = FairShare()
        # an engine whose rows depend on their batch gives every call a search of its own, in a view with a cache of
        # its own where the engine has them (`isolate`; else the calls run one at a time)
        self.isolate = not lm.batch_invariant and isolate and isinstance(lm, Isolating)
        self.room = math.inf if lm.batch_invariant else lm.max_isolated if self.isolate else 1

    def _open(self, tickets: list[Ticket]) -> tuple:
        """The key of the search the call joins, opened if new."""
        prepared = tickets[0].prepared
        key = search_key(prepared, id(tickets[0])) if self.lm.batch_invariant else ("alone", id(tickets[0]))
        if key not in self.searches:
            lm = self.lm.isolated() if self.isolate else self.lm
            self.searches[key] = (DeALSearch(lm, prepared.config), {})
            self.policy.open(key)
        return key

    def _close(self, key: tuple) -> None:
        search, _ = self.searches.pop(key)
        self.policy.close(key)
        try:  # a search that failed mid-pass still holds rows and steps under way: they go back first
            search.drop(search.live)
            forget_all(search.lm, [job.rewards for job in search.jobs])
        except Exception:  # noqa: BLE001 - the engine is what failed; its calls already have their error
            pass
        if search.lm is not self.lm:
            search.lm.close()

    def admit(self, tickets: list[Ticket]) -> None:
        """Admit the tickets of one call (its prompts prefilled together) into the search its key names."""
        prepared = tickets[0].prepared
        if tickets[0].time_left() <= 0:  # its time ran out while it waited for its turn
            for ticket in tickets:
                ticket.events.put(("error", ticket.timed_out(0)))
            return
        try:
            key = self._open(tickets)
            search, served = self.searches[key]
            start = time.perf_counter()  # a prefill is model time too: charged to the search it joins
            with serving(search.lm):
                indices = search.admit([prepared.encoded[t.slot] for t in tickets], [prepared.config] * len(tickets),
                                       [prepared.rewards] * len(tickets),
                                       [None if (f := prepared.formats[t.slot]) is None else f.fork()
                                        for t in tickets])
            spent = time.perf_counter() - start
            search.stats.wall_time_s += spent
            self.policy.charge(key, spent, len(tickets))
            served.update(zip(indices, tickets))
        except Exception as exc:  # noqa: BLE001 - the caller gets its own error; other calls go on
            for ticket in tickets:
                ticket.events.put(("error", exc))

    def step(self) -> None:
        """One step of the least served search, after dropping its cancelled and timed-out calls."""
        key = self.policy.next()
        search, served = self.searches[key]
        self._drop_gone(search, served)
        if not search.live:
            self._close(key)
            return
        start = time.perf_counter()
        try:
            with serving(search.lm):  # a reward that asks a model (Judge) asks this search's backend
                update = search.step(min(t.time_left() for t in served.values()))
        except Exception as exc:  # noqa: BLE001 - a step that fails ends the calls sharing it, with its error
            for ticket in served.values():
                ticket.events.put(("error", exc))
            self._close(key)
            return
        finally:
            self.policy.charge(key, time.perf_counter() - start, len(served))
        self._deliver(search, served, update)

    def _drop_gone(self, search: DeALSearch, served: dict[int, Ticket]) -> None:
        gone = {i for i, t in served.items() if t.cancelled.is_set()}
        for i in [i for i, t in served.items() if i not in gone and t.time_left() <= 0]:
            served[i].events.put(("error", served[i].timed_out(search.stats.steps)))
            gone.add(i)
        if gone:
            search.drop(gone)
            for i in gone:
                served.pop(i, None)

    @staticmethod
    def _deliver(search: DeALSearch, served: dict[int, Ticket], update: StepUpdate) -> None:
        for i, error in search.errors.items():
            if i in served:
                ticket = served.pop(i)  # a reward that ran out of the call's time is the call's timeout
                late = isinstance(error, RewardError) and ticket.time_left() <= 0
                ticket.events.put(("error", ticket.timed_out(search.stats.steps) if late else error))
        search.errors.clear()
        for i, ticket in list(served.items()):
            if i in update.tokens or i in update.finished:
                ticket.events.put(("step", search, i, ticket.slot, update))
            if i in update.finished:
                del served[i]


def forget_all(lm: Backend, sums: list[RewardSum]) -> None:
    """A call's model work in `lm` is over: its rewards drop what they keep in that cache (`Reward.forget`)."""
    for reward in {id(t.reward): t.reward for s in sums for t in s.terms}.values():
        reward.forget(lm)


_OWN_CACHES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_OWN_CACHES_LOCK = threading.Lock()


def _own_cache(lm: Backend) -> threading.Lock:
    """Held by the call whose private loop runs in the backend's own cache (the shared worker never does: its calls
    run in views). Per backend, whichever `DeAL` objects share it."""
    with _OWN_CACHES_LOCK:
        return _OWN_CACHES.setdefault(lm, threading.Lock())


class Runner:
    """Runs prepared calls on one backend: in the caller's thread, or (batching) on a shared worker."""

    def __init__(self, lm: Backend, batching: bool = False):
        self.lm, self.batching = lm, batching
        self._waiting: list[list[Ticket]] = []
        self._wake = threading.Condition()
        self._worker: threading.Thread | None = None
        self._loop = Loop(lm, isolate=True)
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
                room = self._loop.room - len(self._loop.searches)  # more calls wait for their turn
                take = int(min(len(self._waiting), max(room, 0)))
                arrived, self._waiting = self._waiting[:take], self._waiting[take:]
            for tickets in arrived:
                if not all(t.cancelled.is_set() for t in tickets):
                    self._loop.admit(tickets)
            if self._loop.searches:
                self._loop.step()
