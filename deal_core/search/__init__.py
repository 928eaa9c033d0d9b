"""The DeAL search, by part: `search.py` (`DeALSearch`: the step — candidates → rollouts → rewards → selection —
and the state it owns), `state.py` (rows, branches, candidates, finished answers, each prompt's `Job`; output-format
bookkeeping), `scorer.py` (a reward sum's memoised, staged scoring), `scoring.py` (candidates' texts and
objective), `rollout.py` (greedy lookaheads), `selection.py` (winners, commit, stop strings), `interleave.py` (one
pass for every waiting prompt), `trace.py` (`trace=True`). The runner (deal_core/runner.py) runs it."""

from deal_core.search.search import DeALSearch
from deal_core.search.state import SHARED, Finished, StepUpdate, shared_key

__all__ = ["SHARED", "DeALSearch", "Finished", "StepUpdate", "shared_key"]
