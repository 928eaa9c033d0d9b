"""Forward-level interleaving: one pass feeds every prompt that waits for one.

Each live prompt runs its step as a generator (`DeALSearch.run_step`) that yields the pass it needs next — a
`PassRequest`: its handles and one token each — and is sent the pass's scores back (`PassScores`). `Interleaving`
feeds the rows of every waiting prompt in one backend `step`, hands each prompt its rows of the scores, and lets each
step go on to its next pass; a step that ends commits, and the prompt's next step starts at once. So a prompt whose
step needs one pass (its winner's lookahead reused, the rest pruned) does not wait through a neighbour's lookahead:
passes approach what the busiest prompt alone needs, and the rows per pass grow with load. Each prompt's answer is
the one it gets alone (tests/unit/test_interleave.py), given an engine whose rows do not depend on their batch.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from deal_core.backends.base import Handle
from deal_core.search.state import State, StepUpdate


@dataclass(frozen=True)
class PassRequest:
    """A pass a prompt's step waits for: its handles and the one token to feed each."""

    handles: list[Handle]
    tokens: list[int]


@dataclass(frozen=True)
class PassScores:
    """What a waiting step is sent back: the whole pass's scores (the backend's object) and its rows there."""

    scores: Any
    rows: list[int]


Step = Generator[PassRequest, PassScores | None, StepUpdate]  # one prompt's step: the passes it needs, its commit


@dataclass
class Running:
    """A live prompt: its rows, its steps so far, the step under way and the pass that step waits for."""

    state: State
    steps: int = 0
    step: Step | None = None
    need: PassRequest | None = None


@dataclass
class PassOutcome:
    """What one pass did: what the steps that ended committed, the prompts whose step failed (with the error), and
    the most steps any prompt has taken once its step ended."""

    update: StepUpdate = field(default_factory=lambda: StepUpdate({}, {}))
    errors: dict[int, Exception] = field(default_factory=dict)
    steps: int = 0


class Interleaving:
    """The live prompts of a search and their steps under way. `start(state, number)` begins a prompt's step,
    `forward(handles, tokens)` runs one backend pass, `free(handles)` gives sequences back."""

    def __init__(self, start: Callable[[State, int], Step], forward: Callable[[list[Handle], list[int]], Any],
                 free: Callable[[list[Handle]], None]):
        self.start, self.forward, self.free = start, forward, free
        self.running: dict[int, Running] = {}

    def add(self, prompt: int, state: State) -> None:
        self.running[prompt] = Running(state)

    def one_pass(self) -> PassOutcome:
        """Every prompt's step goes on to the pass it needs; one pass feeds them all; each goes on again."""
        outcome = PassOutcome()
        for prompt in list(self.running):
            self._advance(prompt, None, outcome)
        waiting = [(p, run) for p, run in self.running.items() if run.need is not None]
        if not waiting:
            return outcome
        handles = [h for _, run in waiting for h in run.need.handles]
        tokens = [t for _, run in waiting for t in run.need.tokens]
        scores = self.forward(handles, tokens)
        start = 0
        for prompt, run in waiting:
            rows = list(range(start, start + len(run.need.handles)))
            start += len(rows)
            run.need = None
            self._advance(prompt, PassScores(scores, rows), outcome)
        return outcome

    def _advance(self, prompt: int, sent: PassScores | None, outcome: PassOutcome) -> None:
        """Run `prompt`'s step (sending it `sent`, the scores it waited for) up to its next pass; a step that ends is
        committed into `outcome` and the next one starts. A step that fails ends its prompt, with the error."""
        run = self.running[prompt]
        while run.need is None:
            if run.step is None:
                run.step = self.start(run.state, run.steps)
            try:
                run.need = run.step.send(sent)
            except StopIteration as done:
                run.step, run.steps = None, run.steps + 1
                outcome.steps = max(outcome.steps, run.steps)
                outcome.update.tokens.update(done.value.tokens)
                outcome.update.finished.update(done.value.finished)
                if not run.state.rows:  # finished, or its rewards failed (the search's errors)
                    del self.running[prompt]
                    return
            except Exception as exc:  # noqa: BLE001 - this prompt's error; the prompts sharing the pass go on
                run.step = None
                outcome.errors[prompt] = exc
                self.retire(prompt)
                return
            sent = None

    def retire(self, prompt: int) -> None:
        """`prompt` leaves: its step under way is closed (dropping that step's forks), its rows' sequences freed."""
        run = self.running.pop(prompt)
        if run.step is not None:
            run.step.close()
        self.free([row.seq for row in run.state.rows])
