"""The DeAL search, by part: `search.py` (the step: candidates → rollouts → rewards → selection), `state.py` (rows,
branches, candidates, finished answers; output-format bookkeeping), `scoring.py` (texts and rewards),
`selection.py` (winners, commit, stop strings), `trace.py` (`trace=True`). The runner (deal_core/runner.py) runs it."""

from deal_core.search.search import DeALSearch
from deal_core.search.state import SHARED, Finished, StepUpdate, shared_key

__all__ = ["SHARED", "DeALSearch", "Finished", "StepUpdate", "shared_key"]
