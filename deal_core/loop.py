"""The run loop: the searches in flight and the calls each serves. `Loop` admits calls into searches (the policy,
deal_core/scheduler.py, picks which), steps the least served, times calls out and retires them; each call's prompts
are `Ticket`s whose step news arrive as `Event`s. The engine that drives it is deal_core/runner.py.
"""

from __future__ import annotations

import itertools
import math
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from deal_core.backends.base import Backend, Isolating
from deal_core.backends.current import serving
from deal_core.errors import ConfigError, GenerationTimeout, RewardError
from deal_core.prefill import Prefill
from deal_core.preparing import Prepared
from deal_core.rewards.base import RewardSum
from deal_core.scheduler import FairShare, footprint, search_key
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

    def __init__(self, lm: Backend, isolate: bool = False, share: bool = False):
        self.lm = lm
        self.searches: dict[tuple, tuple[DeALSearch, dict[int, Ticket]]] = {}
        self.pending: dict[tuple, list[Prefill]] = {}  # long prompts prefilled a piece per turn, then joining
        self._pieced: set[tuple] = set()  # searches whose last turn was a piece (their calls step next)
        self.policy = FairShare()
        # an engine whose rows depend on their batch runs each search in a view with a cache of its own where the
        # engine has them (`isolate`; else the calls run one at a time); calls share searches where its rows do not
        # depend on their batch, or where the caller takes the engine's rounding for throughput (`share`)
        self.isolate = not lm.batch_invariant and isolate and isinstance(lm, Isolating)
        self.share = lm.batch_invariant or (share and self.isolate)
        self.room = math.inf if lm.batch_invariant else lm.max_isolated if self.isolate else 1

    def place(self, tickets: list[Ticket]) -> tuple | None:
        """The key of the search the call joins now, or None while it must wait: a search its settings may share
        while that search's view has room for the call's rows and cells (`Isolating.capacity`), else a new search
        while fewer than `room` are open."""
        base = search_key(tickets[0].prepared, id(tickets[0])) if self.share else ("alone", id(tickets[0]))
        for n in itertools.count():
            key = base if n == 0 else (*base, n)  # a full view's calls go on; the next ones open another
            if key not in self.searches:
                return key if len(self.searches) < self.room else None
            if self.lm.batch_invariant or self._room_for(key, tickets):
                return key
        return None  # unreachable: the count ends at a key not open

    def _room_for(self, key: tuple, tickets: list[Ticket]) -> bool:
        rows, cells = self.lm.capacity
        waiting = [job.ticket for job in self.pending.get(key, [])]
        need = [footprint(t.prepared, t.slot) for t in [*tickets, *self.searches[key][1].values(), *waiting]]
        return sum(n[0] for n in need) <= rows and sum(n[1] for n in need) <= cells

    def _open(self, tickets: list[Ticket]) -> tuple:
        """The key of the search the call joins, opened if new."""
        key = self.place(tickets)
        if key is None:
            raise ConfigError("no search has room for this call")  # the worker admits only calls that fit
        prepared = tickets[0].prepared
        if key not in self.searches:
            lm = self.lm.isolated() if self.isolate else self.lm
            self.searches[key] = (DeALSearch(lm, prepared.config), {})
            self.policy.open(key)
        return key

    def _close(self, key: tuple) -> None:
        search, _ = self.searches.pop(key)
        self.policy.close(key)
        for job in self.pending.pop(key, []):  # (none: a search with prompts waiting to join stays open)
            job.drop(search.lm)
        try:  # a search that failed mid-pass still holds rows and steps under way: they go back first
            search.drop(search.live)
            forget_all(search.lm, [job.rewards for job in search.jobs])
        except Exception:  # noqa: BLE001 - the engine is what failed; its calls already have their error
            pass
        if search.lm is not self.lm:
            search.lm.close()

    def admit(self, tickets: list[Ticket]) -> None:
        """Admit the tickets of one call (its prompts prefilled together) into the search its key names; a long
        prompt alone is prefilled a piece per turn first (deal_core/prefill.py)."""
        if tickets[0].time_left() <= 0:  # its time ran out while it waited for its turn
            for ticket in tickets:
                ticket.events.put(("error", ticket.timed_out(0)))
            return
        try:
            key = self._open(tickets)
            ids = tickets[0].prepared.encoded[tickets[0].slot].ids
            piece = getattr(self.searches[key][0].lm, "prefill_piece", 0)
            if len(tickets) == 1 and 0 < piece < len(ids):
                self.pending.setdefault(key, []).append(Prefill(tickets[0], list(ids), piece))
                return
            self._join(key, tickets)
        except Exception as exc:  # noqa: BLE001 - the caller gets its own error; other calls go on
            for ticket in tickets:
                ticket.events.put(("error", exc))

    def _join(self, key: tuple, tickets: list[Ticket], prefilled: Prefill | None = None) -> None:
        prepared = tickets[0].prepared
        search, served = self.searches[key]
        start = time.perf_counter()  # a prefill is model time too: charged to the search it joins
        with serving(search.lm):
            indices = search.admit([prepared.encoded[t.slot] for t in tickets], [prepared.config] * len(tickets),
                                   [prepared.rewards] * len(tickets),
                                   [None if (f := prepared.formats[t.slot]) is None else f.fork() for t in tickets],
                                   None if prefilled is None else [(prefilled.handle, prefilled.fed)])
        spent = time.perf_counter() - start
        search.stats.wall_time_s += spent
        self.policy.charge(key, spent, len(tickets))
        served.update(zip(indices, tickets))

    def _prefill(self, key: tuple) -> None:
        """The next piece of the first long prompt waiting to join search `key` (charged to that search)."""
        job, lm = self.pending[key][0], self.searches[key][0].lm
        start = time.perf_counter()
        try:
            if job.ticket.cancelled.is_set() or job.ticket.time_left() <= 0:
                raise job.ticket.timed_out(0)
            if job.advance(lm):
                self.pending[key].pop(0)
                self._join(key, [job.ticket], job)  # the search owns the prefilled sequence from here
        except Exception as exc:  # noqa: BLE001 - the caller gets its own error; other calls go on
            if job in self.pending[key]:
                self.pending[key].remove(job)
            job.drop(lm)  # a search that failed to admit it does not own its sequence either
            job.ticket.events.put(("error", exc))
        self.policy.charge(key, time.perf_counter() - start, 1)

    def step(self) -> None:
        """One step of the least served search (or a piece of a long prompt waiting to join it), after dropping
        its cancelled and timed-out calls."""
        key = self.policy.next()
        if self.pending.get(key) and (not self.searches[key][1] or key not in self._pieced):  # its calls take turns
            self._pieced.add(key)
            self._prefill(key)
            return
        self._pieced.discard(key)
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
