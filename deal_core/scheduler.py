"""Continuous batching: concurrent one-prompt calls share the forward passes of one running search.

A worker thread owns the model's searches. A call (`submit`) waits in a queue; at the next step boundary the
worker admits it into the running search whose shared settings (`search.SHARED`: top_k, lookahead, λ, …) match its
own (prefill, then its KV rows join the batch, left-padded to line up), steps every search once, hands each call the
update for its prompt, and retires a call when its prompt finishes, fails, times out or is cancelled. Rewards, output
format, budget and stop strings are each call's own; each answer equals the same call made alone (tested).
"""

from __future__ import annotations

import math
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from deal_core.errors import GenerationTimeout
from deal_core.search import DeALSearch, StepUpdate, shared_key

if TYPE_CHECKING:
    from deal_core.decoder import DeAL, Prepared


def length_class(prompt_tokens: int, short: int = 512) -> int:
    """0 for prompts up to `short` tokens, then one class per doubling: calls share a search only within a class."""
    return 0 if prompt_tokens <= short else math.ceil(math.log2(prompt_tokens / short))


@dataclass(eq=False)
class Ticket:
    """One submitted call: iterate it for `(search, index, update)` per step of its prompt."""

    prepared: Prepared
    events: queue.Queue = field(default_factory=queue.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.perf_counter)

    def __iter__(self) -> Iterator[tuple[DeALSearch, int, StepUpdate]]:
        try:
            while True:
                kind, *payload = self.events.get()
                if kind == "error":
                    raise payload[0]
                search, index, update = payload
                yield search, index, update
                if index in update.finished:
                    return
        finally:
            self.cancelled.set()  # a consumer that stops early (closed stream, cancelled task) frees its rows

    def time_left(self) -> float:
        timeout = self.prepared.config.timeout_s
        return math.inf if timeout is None else timeout - (time.perf_counter() - self.started)


class Scheduler:
    def __init__(self, deal: DeAL):
        self.deal = deal
        self._waiting: list[Ticket] = []
        self._wake = threading.Condition()
        self._searches: dict[tuple, tuple[DeALSearch, dict[int, Ticket]]] = {}
        # model time each search has used per call it serves; a new search starts level with the least served, so
        # one costly call (long lookahead, many candidates) gets its share of the time, not one step in turn
        self._used: dict[tuple, float] = {}
        self._thread: threading.Thread | None = None

    def submit(self, prepared: Prepared) -> Ticket:
        ticket = Ticket(prepared)
        with self._wake:
            self._waiting.append(ticket)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="deal-scheduler", daemon=True)
                self._thread.start()
            self._wake.notify()
        return ticket

    # -- the worker --------------------------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._waiting and not self._searches:
                    if not self._wake.wait(timeout=30):
                        self._thread = None  # idle: the next submit starts a fresh worker
                        return
                arrived, self._waiting = self._waiting, []
            self._admit(arrived)
            if self._searches:  # fair shares: the search whose calls have had the least model time goes next
                self._step(min(self._searches, key=self._used.__getitem__))

    def _admit(self, arrived: list[Ticket]) -> None:
        for ticket in arrived:
            if ticket.cancelled.is_set():
                continue
            prepared = ticket.prepared
            # rows of one search are padded to its longest: a long prompt gets a search of its own length class
            key = (*shared_key(prepared.config), length_class(len(prepared.encoded[0].ids)))
            # sampled proposals draw from one generator per search, and a reward whose cost the caller's pattern or
            # schema sets would stall its neighbours' steps: such a call gets a search of its own
            if prepared.config.sample or not prepared.rewards.bounded_cost:
                key = (*key, id(ticket))
            try:
                constraints = self.deal._constraints(prepared)
                if key not in self._searches:
                    search = DeALSearch(self.deal.lm, prepared.config, prepared.rewards, [])
                    search.isolate_errors = True  # a reward that fails ends its own call, not its neighbours'
                    self._searches[key] = (search, {})
                    self._used[key] = min(self._used.values(), default=0.0)
                search, tickets = self._searches[key]
                start = time.perf_counter()  # a prefill is model time too: charged to the search it joins
                [index] = search.admit(prepared.encoded, [prepared.config], [prepared.rewards], constraints)
                self._used[key] += time.perf_counter() - start
                tickets[index] = ticket
            except Exception as exc:  # noqa: BLE001 - the caller gets its own error; other calls go on
                ticket.events.put(("error", exc))

    def _retire(self, key: tuple) -> None:
        del self._searches[key], self._used[key]

    def _step(self, key: tuple) -> None:
        search, tickets = self._searches[key]
        gone = {i for i, t in tickets.items() if t.cancelled.is_set()}
        for i in [i for i, t in tickets.items() if i not in gone and t.time_left() <= 0]:
            tickets[i].events.put(("error", GenerationTimeout(
                f"search exceeded timeout_s={tickets[i].prepared.config.timeout_s}; raise timeout_s or lower "
                "max_new_tokens/top_k/lookahead")))
            gone.add(i)
        if gone:
            search.drop(gone)
            for i in gone:
                tickets.pop(i, None)
        if not search.live:
            self._retire(key)
            return
        start = time.perf_counter()
        try:
            update = search.step(min(t.time_left() for t in tickets.values()))
        except Exception as exc:  # noqa: BLE001 - a step that fails ends the calls sharing it, with its error
            for ticket in tickets.values():
                ticket.events.put(("error", exc))
            self._retire(key)
            return
        finally:
            if key in self._used:
                self._used[key] += (time.perf_counter() - start) / max(len(tickets), 1)
        for i, error in search.errors.items():
            if i in tickets:
                tickets.pop(i).events.put(("error", error))
        search.errors.clear()
        for i, ticket in list(tickets.items()):
            if i in update.tokens or i in update.finished:
                ticket.events.put(("step", search, i, update))
            if i in update.finished:
                del tickets[i]

