"""Forward-level interleaving: one pass feeds every prompt that waits for one.

Each live prompt runs its step as a generator (`DeALSearch.run_step`) that yields the pass it needs next — its
handles and one token each — and gets the pass's scores back. `one_pass` feeds the rows of every waiting prompt in
one backend `step`, hands each prompt its rows of the scores, and lets each step go on to its next pass; a step
that ends commits, and the prompt's next step starts at once. So a prompt whose step needs one pass (its winner's
lookahead reused, the rest pruned) does not wait through a neighbour's lookahead: passes approach what the busiest
prompt alone needs, and the rows per pass grow with load. Each prompt's answer is the one it gets alone
(tests/unit/test_interleave.py), given an engine whose rows do not depend on their batch.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deal_core.backends.base import Handle
from deal_core.search.state import State, StepUpdate

if TYPE_CHECKING:
    from deal_core.search.search import DeALSearch

Forward = tuple[list[Handle], list[int]]  # a pass a prompt's step waits for: its handles and one token each
Sent = tuple[Any, list[int]]  # what it gets back: the pass's scores and its rows there


@dataclass
class Running:
    """A live prompt: its rows, its steps so far, the step under way and the pass that step waits for."""

    state: State
    steps: int = 0
    step: Generator | None = None
    need: Forward | None = None


def one_pass(search: DeALSearch) -> StepUpdate:
    """Every prompt's step goes on to the pass it needs; one pass feeds them all; each goes on again. Returns what
    the steps that ended committed (a prompt's newest best response, its finished answer)."""
    update = StepUpdate({}, {})
    for prompt in list(search.running):
        _advance(search, prompt, None, update)
    waiting = [(p, run) for p, run in search.running.items() if run.need is not None]
    if not waiting:
        return update
    handles = [h for _, run in waiting for h in run.need[0]]
    tokens = [t for _, run in waiting for t in run.need[1]]
    scores = search.lm.step(handles, tokens)
    search._count(len(handles), len(handles))
    start = 0
    for prompt, run in waiting:
        rows = list(range(start, start + len(run.need[0])))
        start += len(rows)
        run.need = None
        _advance(search, prompt, (scores, rows), update)
    return update


def _advance(search: DeALSearch, prompt: int, sent: Sent | None, update: StepUpdate) -> None:
    """Run `prompt`'s step (sending it `sent`, the scores it waited for) up to its next pass; a step that ends is
    committed into `update` and the next one starts. A step that fails ends its prompt, with the error."""
    run = search.running[prompt]
    while run.need is None:
        if run.step is None:
            run.step = search.run_step(run.state, run.steps)
        try:
            run.need = run.step.send(sent)
        except StopIteration as done:
            run.step, run.steps = None, run.steps + 1
            search.stats.steps = max(search.stats.steps, run.steps)
            update.tokens.update(done.value.tokens)
            update.finished.update(done.value.finished)
            if not run.state.rows:  # finished, or its rewards failed (search.errors)
                del search.running[prompt]
                return
        except Exception as exc:  # noqa: BLE001 - this prompt's error; the prompts sharing the pass go on
            run.step = None
            search.errors[prompt] = exc
            retire(search, prompt)
            return
        sent = None


def retire(search: DeALSearch, prompt: int) -> None:
    """`prompt` leaves: its step under way is closed (dropping that step's forks), its rows' sequences dropped."""
    run = search.running.pop(prompt)
    if run.step is not None:
        run.step.close()
    search.lm.drop([row.seq for row in run.state.rows])
