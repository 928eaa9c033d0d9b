"""The DeAL step: propose top-k tokens, roll each out greedily, score with rewards, keep the best.

Per step and per live state (a prompt's beam):
  candidates  = the LM's top-k next tokens
  extension   = candidate + greedy lookahead of `lookahead` tokens, all candidates batched on one KV cache
  score       = log P(prefix + candidate) + λ · Σ w_i R_i(prompt, prefix + extension)      (scoring.py)
  selection   = the `beam_width` best per prompt; `commit` tokens of each winner are appended (selection.py)

Two exact shortcuts keep it fast. Reuse: the winner's lookahead is the greedy continuation of the new prefix, so
the most likely candidate next step only needs its rollout topped up. Pruning: rewards declare bounds, so a
candidate whose log-probability plus λ·max-reward cannot beat an already scored candidate is never rolled out.
Neither changes the result: tests/unit/test_search_oracle.py compares every reuse × prune combination with a plain
reference implementation. The search talks to the model only through the `Backend` protocol; the engine
(deal_core/runner.py) admits prompts, steps and retires them.

The search owns its state; each phase is a small class or function with typed inputs and outputs (scoring.py,
selection.py, rollout.py, trace.py, interleave.py) that never sees the search itself. Sequences are freed in one
place (`_free`).

Prompts do not wait for each other: each prompt's step is a generator that yields the forward pass it needs next
(a `PassRequest`: its handles and one token each — a lookahead token, a top-up) and is sent the scores back, and
`step()` runs one pass for every prompt that waits for one (interleave.py). A prompt whose step needs one pass does not sit through its
neighbour's lookahead; passes grow in rows with load, not in number.
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator
from typing import Any

from deal_core.backends.base import Backend, Handle
from deal_core.config import DeALConfig
from deal_core.constraint import Constraint
from deal_core.objective import objective
from deal_core.prompts import EncodedPrompt
from deal_core.result import SearchStats, StepTrace
from deal_core.rewards.base import RewardSum
from deal_core.rewards.budget import deadline
from deal_core.search import trace
from deal_core.search.interleave import Interleaving, PassRequest, PassScores, Step
from deal_core.search.rollout import Rollout, RolloutPlan
from deal_core.search.scorer import Scorer
from deal_core.search.scoring import CandidateScoring
from deal_core.search.selection import Selection, thresholds
from deal_core.search.state import Branch, Candidate, Job, Row, State, StepUpdate, advanced
from deal_core.stops import stop_window


class DeALSearch:
    """A search over a batch of prompts, driven by the engine: `admit` prompts (also
    between steps: continuous batching), `step`, `drop` (a cancelled prompt). Prompts may differ in their rewards,
    output format, budget and stop strings; the search settings in `SHARED` are common."""

    def __init__(self, lm: Backend, config: DeALConfig):
        self.lm, self.config = lm, config
        self.stats = SearchStats()
        self.proposer = lm.proposer(config.top_k, config.sample, config.temperature or 1.0, config.top_p, config.seed,
                                    config.repetition_penalty, config.no_repeat_ngram_size)
        # repetition penalties look at each row's token history (prompt + response so far)
        self.histories = config.repetition_penalty != 1.0 or config.no_repeat_ngram_size > 0
        self.jobs: list[Job] = []
        self.requests: list[str] = []  # per job: the text rewards see as its prompt
        self._scorers: dict[int, Scorer] = {}
        self.traces: dict[int, list[StepTrace]] = {}
        # a prompt whose rewards failed leaves the step (its error is here, for the engine), the others go on
        self.errors: dict[int, Exception] = {}
        self._scoring = CandidateScoring(lm, self.jobs, config.lookahead, config.reward_weight, self.stats)
        self._selection = Selection(lm, self.jobs, config, self.stats)
        self._rollout = Rollout(lm, self.proposer, self.histories, self.stats)
        self._passes = Interleaving(self.run_step, self._forward, self._free)  # per live prompt: rows, step under way

    @property
    def prompts(self) -> list[EncodedPrompt]:
        return [job.prompt for job in self.jobs]

    def _job(self, prompt: EncodedPrompt, config: DeALConfig, rewards: RewardSum,
             constraint: Constraint | None) -> Job:
        scorer = self._scorers.get(id(rewards))
        if scorer is None:
            scorer = self._scorers[id(rewards)] = Scorer(rewards, self.requests, self.stats)
        span = stop_window(config.stop)
        return Job(prompt, config, rewards, constraint, scorer, rewards.bounds()[1] if rewards else 0.0,
                   rewards.tightens_bound, span)

    # -- driving it ------------------------------------------------------------------------------------------
    def admit(self, prompts: list[EncodedPrompt], configs: list[DeALConfig], rewards: list[RewardSum],
              constraints: list[Constraint | None], prefilled: list[tuple[Any, int]] | None = None) -> list[int]:
        """Prefill `prompts` (a sequence each) and add them to the running rows; returns their indices. Between
        steps only. `prefilled`: per prompt, a sequence that holds its first n tokens already (deal_core/prefill.py)."""
        first = len(self.jobs)
        for args in zip(prompts, configs, rewards, constraints):
            self.jobs.append(self._job(*args))
            self.requests.append(args[0].request)
        indices = list(range(first, len(self.jobs)))
        for i in indices:
            self.traces[i] = []
        eos = self.lm.eos_token_ids
        with self.lm.session():
            if prefilled is None:
                seqs, logits = self.lm.prefill([p.ids for p in prompts])
            else:
                seqs = [seq for seq, _ in prefilled]
                logits = self.lm.extend(seqs, [p.ids[n:] for p, (_, n) in zip(prompts, prefilled)])
            self._count(len(seqs), sum(len(p.ids) for p in prompts))
            allowed = [c.allowed(cfg.max_new_tokens) if c is not None else None
                       for c, cfg in zip(constraints, configs)]
            rows = [Row(i, [], 0.0, prop, Branch([prop.greedy], [prop.greedy_logp],
                                                 constraint=advanced(c, prop.greedy, eos)), seq, constraint=c)
                    for i, c, prop, seq in zip(indices, constraints, self.proposer.propose(
                        logits, None, allowed, [p.ids for p in prompts] if self.histories else None), seqs)]
        for row in rows:
            self._passes.add(row.prompt, State([row]))
        return indices

    def drop(self, prompts: set[int]) -> None:
        """Stop searching for `prompts` (cancelled or timed out): a step under way is closed (its forks dropped),
        their rows leave, their sequences are dropped."""
        gone = [p for p in prompts if p in self._passes.running]
        if gone:
            with self.lm.session():
                for p in gone:
                    self._passes.retire(p)

    @property
    def live(self) -> set[int]:
        return set(self._passes.running)

    @property
    def rows(self) -> list[Row]:
        """Every live row (between passes; rows of a step under way are still its prompt's old rows)."""
        return [row for run in self._passes.running.values() for row in run.state.rows]

    def step(self, time_left: float = math.inf) -> StepUpdate:
        """One forward pass for every live prompt that waits for one, and the work around it: each prompt's step
        goes on up to its next pass, and what the steps that ended committed is returned. Rewards whose cost
        depends on their input (regex, JSON schema) stop at `time_left` seconds."""
        start = time.perf_counter()
        with self.lm.session(), deadline(time_left):
            outcome = self._passes.one_pass()
        self.errors.update(outcome.errors)
        self.stats.steps = max(self.stats.steps, outcome.steps)
        self.stats.wall_time_s += time.perf_counter() - start
        return outcome.update

    def run_step(self, state: State, number: int) -> Step:
        """Step `number` of one prompt's rows (a generator: it yields each forward pass it needs). A step that is
        closed or fails frees the forks it made."""
        candidates: list[list[Candidate]] = []
        try:
            return (yield from self._step(state, candidates, number))
        except BaseException:
            self._free([c.seq for cands in candidates for c in cands
                        if c.seq is not None and all(c.seq is not row.seq for row in state.rows)])
            raise

    def _step(self, state: State, candidates: list[list[Candidate]], number: int) -> Step:
        cfg, rows = self.config, state.rows
        remaining = [self.jobs[row.prompt].config.max_new_tokens - len(row.tokens) for row in rows]
        # A tail carried past its row's budget is harmless: rollouts stop at `rollout`, scoring and commits at the
        # budget. (Cutting every row's tail to the shortest budget would redo the others' lookaheads.)
        rollout = [min(max(cfg.lookahead, cfg.commit) + 1, left) for left in remaining]
        candidates += [
            [Candidate(r, rank, tok, lp) for rank, (tok, lp) in enumerate(self.proposer.candidates(row.proposal))]
            for r, row in enumerate(rows)
        ]
        reused = yield from self._reuse(state, candidates, rollout, remaining)
        # Pruning: skip candidates that cannot enter the beam even with the best possible reward.
        threshold = thresholds(rows, reused, cfg.beam_width)
        pending = [c for cands in candidates for c in cands if c.branch is None]
        if cfg.prune:
            survivors = [c for c in pending if objective(rows[c.row].logp + c.logp, self.reward_bound(
                rows[c.row], c, remaining[c.row]), cfg.reward_weight) >= threshold[rows[c.row].prompt]]
        else:
            survivors = pending
        self.stats.candidates_pruned += len(pending) - len(survivors)
        if survivors:
            yield from self._expand(state, survivors, rollout, remaining)
            self.errors.update(self._scoring.score(rows, survivors, threshold if cfg.prune else None))
        winners = self._selection.select(rows, candidates, self.errors)
        if cfg.trace:
            for prompt, record in trace.record(self.lm, cfg.lookahead, rows, candidates, winners, number):
                self.traces[prompt].append(record)
        committed = self._selection.commit(state, candidates, winners)
        self._free(committed.spent)
        return committed.update

    def _reuse(self, state: State, candidates: list[list[Candidate]], rollout: list[int],
               remaining: list[int]) -> Generator[PassRequest, PassScores, list[Candidate]]:
        """Reuse: the candidate that equals a row's greedy tail continues it on the row's own sequence (topped up,
        scored)."""
        rows, reused = state.rows, []
        for r, row in enumerate(rows):
            match = next((c for c in candidates[r] if c.token == row.tail.tokens[0]), None) if self.config.reuse \
                else None
            if match is not None:
                match.branch, match.seq = row.tail, row.seq
                reused.append(match)
        if reused:
            self.stats.candidates_rolled_out += len(reused)
            yield from self._rollout.run(RolloutPlan(
                [rows[c.row].seq for c in reused], [c.branch for c in reused], [rollout[c.row] for c in reused],
                [remaining[c.row] for c in reused], [self._history(rows[c.row]) for c in reused]))
            self.errors.update(self._scoring.score(rows, reused, None))
        return reused

    def _expand(self, state: State, survivors: list[Candidate], rollout: list[int],
                remaining: list[int]) -> Generator[PassRequest, PassScores, None]:
        """Fork each surviving candidate's sequence from its row's committed prefix and roll it out (one batch for
        all)."""
        rows, eos = state.rows, self.lm.eos_token_ids
        seqs = self.lm.fork([rows[c.row].seq for c in survivors],
                            [len(self.jobs[rows[c.row].prompt].prompt.ids) + len(rows[c.row].tokens)
                             for c in survivors])
        for c, seq in zip(survivors, seqs):
            c.branch = Branch([c.token], [c.logp], constraint=advanced(rows[c.row].constraint, c.token, eos))
            c.seq = seq
        self.stats.candidates_rolled_out += len(survivors)
        yield from self._rollout.run(RolloutPlan(
            seqs, [c.branch for c in survivors], [rollout[c.row] for c in survivors],
            [remaining[c.row] for c in survivors], [self._history(rows[c.row]) for c in survivors]))

    # -- pieces of a step ------------------------------------------------------------------------------------
    def _history(self, row: Row) -> list[int] | None:
        """The tokens before a row's next position (prompt + committed), where repetition penalties need them."""
        return self.jobs[row.prompt].prompt.ids + row.tokens if self.histories else None

    def reward_bound(self, row: Row, c: Candidate, remaining: int) -> float:
        """The most the rewards can give candidate `c` of `row` (see `Job.reward_bound`)."""
        return self.jobs[row.prompt].reward_bound(row, c, remaining, self.config.lookahead)

    def _forward(self, handles: list[Handle], tokens: list[int]) -> Any:
        """One backend pass: one token for each handle."""
        scores = self.lm.step(handles, tokens)
        self._count(len(handles), len(handles))
        return scores

    def _free(self, handles: list[Handle]) -> None:
        """The one place sequences are given back to the backend: a step's spent sequences, the forks of a step
        that failed or was closed, a retired prompt's rows."""
        self.lm.drop(handles)

    def _count(self, rows: int, tokens: int) -> None:
        self.stats.forward_passes += 1
        self.stats.tokens_evaluated += tokens
