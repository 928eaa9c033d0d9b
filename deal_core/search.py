"""The DeAL search loop: propose top-k tokens, roll each out greedily, score with rewards, keep the best.

Per step and per live state (a prompt's beam):
  candidates  = the LM's top-k next tokens
  extension   = candidate + greedy lookahead of `lookahead` tokens, all candidates batched on one KV cache
  score       = log P(prefix + candidate) + λ · Σ w_i R_i(prompt, prefix + extension)
  selection   = the `beam_width` best per prompt; `commit` tokens of each winner are appended.

Two exact shortcuts keep it fast. Reuse: the winner's lookahead is the greedy continuation of the new prefix, so
the most likely candidate next step only needs its rollout topped up. Pruning: rewards declare bounds, so a
candidate whose log-probability plus λ·max-reward cannot beat an already scored candidate is never rolled out.
Neither changes the result: tests/unit/test_search_oracle.py compares every reuse × prune combination with a plain
reference implementation. The search talks to the model only through the `Backend` protocol.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from deal_core.backends.base import Backend, Proposal, Rows
from deal_core.config import DeALConfig, shared_settings
from deal_core.constraint import Constraint
from deal_core.errors import GenerationTimeout, RewardError
from deal_core.prompts import EncodedPrompt
from deal_core.result import CandidateTrace, SearchStats, StepTrace
from deal_core.rewards.base import RewardSum
from deal_core.rewards.budget import deadline
from deal_core.streaming import cut_at_stop


@dataclass
class Branch:
    """Tokens after a committed prefix. All but the last are in the branch's KV rows; `after[j]` follows tokens[j]."""

    tokens: list[int]
    logps: list[float]
    after: list[Proposal] = field(default_factory=list)
    constraint: Constraint | None = None  # the output format's state after all of `tokens`


@dataclass
class Row:
    """One live search state: a prompt's committed response, what the LM proposes next, and a greedy tail."""

    prompt: int
    tokens: list[int]
    logp: float
    proposal: Proposal
    tail: Branch
    constraint: Constraint | None = None  # the output format's state after `tokens`


@dataclass
class Candidate:
    row: int
    rank: int
    token: int
    logp: float
    branch: Branch | None = None
    batch: Rows | None = None
    batch_row: int = 0
    reward: float = 0.0
    components: dict[str, float] = field(default_factory=dict)
    score: float = -math.inf
    text: str = ""
    mean_logp: float = 0.0  # of the scored text's tokens (what `Fluency` reads)
    final: bool = False
    skipped: bool = False


@dataclass
class Finished:
    tokens: list[int]
    logp: float
    score: float
    reason: str
    fallback: bool
    complete: bool = True  # the output format (if any) is complete
    closed_early: bool = False  # ...because the budget made it close


@dataclass
class State:
    """The search between steps: live rows, the engine's rows holding their caches, and how many cache columns hold
    prompt + committed tokens (the same for every row)."""

    rows: list[Row]
    cache: Rows
    committed: int


@dataclass
class StepUpdate:
    """What a step committed: the best response so far per prompt (None where nothing changed)."""

    tokens: dict[int, list[int]]
    finished: dict[int, Finished]


class Scorer:
    """Scores texts with the reward sum, once per distinct (prompt, text, is_final, mean token log-probability)
    within a call.

    Cheap rewards run first; expensive ones (classifiers, judges) only on texts that `keep(i, partial)` accepts,
    where `partial` is the cheap rewards' weighted sum plus the best the expensive ones could add.
    """

    def __init__(self, rewards: RewardSum, requests: list[str], stats: SearchStats):
        self.requests, self.stats = requests, stats
        terms = list(zip(rewards.labels, rewards.terms))
        self.stages = [stage for stage in (
            [(label, t) for label, t in terms if not t.reward.is_expensive],
            [(label, t) for label, t in terms if t.reward.is_expensive],
        ) if stage]
        self.stage_upper = [RewardSum(terms=[t for _, t in stage]).bounds()[1] for stage in self.stages]
        self.reads_logprobs = [any(t.reward.uses_logprobs for _, t in stage) for stage in self.stages]
        self.memo: dict[tuple[int, int, str, bool, float], dict[str, float]] = {}

    def _stage(self, index: int, keys: list[tuple[int, str, bool, float]]) -> list[dict[str, float]]:
        if not self.reads_logprobs[index]:  # the same text scores the same whatever its likelihood
            keys = [(p, t, f, 0.0) for p, t, f, _ in keys]
        missing = list(dict.fromkeys(k for k in keys if (index, *k) not in self.memo))
        if missing:
            prompts = [self.requests[p] for p, _, _, _ in missing]
            texts = [t for _, t, _, _ in missing]
            finals = [f for _, _, f, _ in missing]
            logprobs = [lp for _, _, _, lp in missing]
            columns = {label: term.reward.score(prompts, texts, finals, logprobs)
                       for label, term in self.stages[index]}
            self.stats.reward_calls += 1
            self.stats.texts_scored += len(missing)
            for i, key in enumerate(missing):
                self.memo[(index, *key)] = {label: values[i] for label, values in columns.items()}
        return [self.memo[(index, *k)] for k in keys]

    def __call__(self, items: list[tuple[int, str, bool, float]],
                 keep: Callable[[int, float], bool] | None = None) -> list[tuple[float, dict[str, float]] | None]:
        totals, components = [0.0] * len(items), [{} for _ in items]
        alive = list(range(len(items)))
        for index, stage in enumerate(self.stages):
            if index and keep is not None:
                still_possible = sum(self.stage_upper[index:])
                alive = [i for i in alive if keep(i, totals[i] + still_possible)]
            weights = {label: term.weight for label, term in stage}
            for i, values in zip(alive, self._stage(index, [items[i] for i in alive])):
                components[i].update(values)
                totals[i] += sum(weights[label] * v for label, v in values.items() if weights[label])
        kept = set(alive)
        return [(totals[i], components[i]) if i in kept else None for i in range(len(items))]


def _advanced(constraint: Constraint | None, token: int, eos: frozenset[int]) -> Constraint | None:
    """A fork of `constraint` that has consumed `token`. End-of-sequence tokens are never fed to a constraint (the
    grammar allows them only where the output is complete, and a matcher cannot be rolled back over them)."""
    if constraint is None:
        return None
    out = constraint.fork()
    if token not in eos:
        out.consume(token)
    return out


def _fed(tokens: list[int], eos: frozenset[int]) -> int:
    """How many of `tokens` a constraint has consumed (all but end-of-sequence tokens)."""
    return sum(t not in eos for t in tokens)


@dataclass
class Job:
    """One prompt of a search and what is its own: budget and stop strings (its config), rewards, output format."""

    prompt: EncodedPrompt
    config: DeALConfig
    rewards: RewardSum
    constraint: Constraint | None
    scorer: Scorer
    reward_max: float
    tight: bool  # some reward bounds itself tighter than its range (`Reward.upper_bound`)
    stop_span: int  # stop strings are looked for in the text of this many newest tokens (0: none)


SHARED = shared_settings()  # the settings every prompt of one search shares (declared in DeALConfig)


def shared_key(config: DeALConfig) -> tuple:
    """Requests whose configs agree on these settings can share one search (and its forward passes)."""
    return tuple(getattr(config, name) for name in SHARED)


class DeALSearch:
    """A search over a batch of prompts. Iterate `run()` for per-step updates, or drive it: `admit` prompts (also
    between steps: continuous batching), `step`, `drop` (a cancelled prompt). Prompts may differ in their rewards,
    output format, budget and stop strings; the search settings in `SHARED` are common."""

    def __init__(self, lm: Backend, config: DeALConfig, rewards: RewardSum, prompts: list[EncodedPrompt],
                 constraints: list[Constraint | None] | None = None):
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
        self.finished: dict[int, list[Finished]] = {}
        self.fallback: set[int] = set()
        self.state: State | None = None
        self._initial = (prompts, rewards, constraints or [None] * len(prompts))
        # Shared searches (the scheduler's) isolate reward failures: the prompt whose rewards failed leaves the
        # step (its error is in `errors`), the others go on. A one-call search raises them.
        self.isolate_errors = False
        self.errors: dict[int, Exception] = {}

    @property
    def prompts(self) -> list[EncodedPrompt]:
        return [job.prompt for job in self.jobs]

    def _job(self, prompt: EncodedPrompt, config: DeALConfig, rewards: RewardSum,
             constraint: Constraint | None) -> Job:
        scorer = self._scorers.get(id(rewards))
        if scorer is None:
            scorer = self._scorers[id(rewards)] = Scorer(rewards, self.requests, self.stats)
        # A stop string of L characters (at most 4L bytes) spans at most 4L + 1 tokens, plus one so that the
        # window's first token lies before it.
        span = 4 * max(map(len, config.stop)) + 2 if config.stop else 0
        return Job(prompt, config, rewards, constraint, scorer, rewards.bounds()[1] if rewards else 0.0,
                   rewards.tightens_bound, span)

    # -- driving it ------------------------------------------------------------------------------------------
    def admit(self, prompts: list[EncodedPrompt], configs: list[DeALConfig], rewards: list[RewardSum],
              constraints: list[Constraint | None]) -> list[int]:
        """Prefill `prompts` and add them to the running rows (left padding lines the caches up); returns their
        indices. Between steps only."""
        first = len(self.jobs)
        for args in zip(prompts, configs, rewards, constraints):
            self.jobs.append(self._job(*args))
            self.requests.append(args[0].request)
        indices = list(range(first, len(self.jobs)))
        for i in indices:
            self.traces[i], self.finished[i] = [], []
        eos = self.lm.eos_token_ids
        with self.lm.session():
            batch, logits = self.lm.prefill([p.ids for p in prompts])
            self._count(batch.size, sum(len(p.ids) for p in prompts))
            allowed = [c.allowed(cfg.max_new_tokens) if c is not None else None
                       for c, cfg in zip(constraints, configs)]
            rows = [Row(i, [], 0.0, prop, Branch([prop.greedy], [prop.greedy_logp],
                                                 constraint=_advanced(c, prop.greedy, eos)), constraint=c)
                    for i, c, prop in zip(indices, constraints, self.proposer.propose(
                        logits, None, allowed, [p.ids for p in prompts] if self.histories else None))]
            state = self.state
            if state is None or not state.rows:
                self.state = State(rows, batch, batch.length)
                return indices
            # Running rows keep their committed columns (tails are topped up next step); the shorter side is
            # left-padded so that every row's committed tokens end at the same column.
            width = max(state.committed, batch.length)
            old = self.lm.pad(self.lm.gather([(state.cache, r) for r in range(len(state.rows))], state.committed),
                              width)
            for row in state.rows:
                self._truncate(row.tail, 0)
            new = self.lm.pad(batch, width)
            state.cache = self.lm.gather([(old, r) for r in range(old.size)] + [(new, r) for r in range(new.size)],
                                         width)
            state.rows, state.committed = state.rows + rows, width
        return indices

    def drop(self, prompts: set[int]) -> None:
        """Stop searching for `prompts` (cancelled or timed out): their rows leave the batch."""
        state = self.state
        if state is None or not any(r.prompt in prompts for r in state.rows):
            return
        keep = [r for r, row in enumerate(state.rows) if row.prompt not in prompts]
        state.rows = [state.rows[r] for r in keep]
        if keep:
            with self.lm.session():
                state.cache = self.lm.gather([(state.cache, r) for r in keep], state.cache.length)

    @property
    def live(self) -> set[int]:
        return {row.prompt for row in self.state.rows} if self.state is not None else set()

    def step(self, time_left: float = math.inf) -> StepUpdate:
        """One step for every live row. Rewards whose cost depends on their input (regex, JSON schema) stop at
        `time_left` seconds."""
        start = time.perf_counter()
        with self.lm.session(), deadline(time_left):
            update = self._step(self.state)
        self.stats.steps += 1
        self.stats.wall_time_s += time.perf_counter() - start
        return update

    # -- the loop of one call --------------------------------------------------------------------------------
    def run(self) -> Iterator[StepUpdate]:
        start = time.perf_counter()
        prompts, rewards, constraints = self._initial
        n = len(prompts)
        self.admit(prompts, [self.config] * n, [rewards] * n, constraints)
        self.stats.wall_time_s = time.perf_counter() - start
        timeout = self.config.timeout_s
        while self.state.rows:
            left = math.inf if timeout is None else timeout - (time.perf_counter() - start)
            if left <= 0:
                raise self._timeout()
            try:
                update = self.step(left)
            except RewardError as exc:
                if timeout is not None and time.perf_counter() - start > timeout:
                    raise self._timeout() from exc
                raise
            yield update

    def _timeout(self) -> GenerationTimeout:
        return GenerationTimeout(f"search exceeded timeout_s={self.config.timeout_s} after {self.stats.steps} steps; "
                                 "raise timeout_s or lower max_new_tokens/top_k/lookahead")

    def _step(self, state: State) -> StepUpdate:
        cfg, rows, batch, committed = self.config, state.rows, state.cache, state.committed
        jobs = [self.jobs[row.prompt] for row in rows]
        remaining = [job.config.max_new_tokens - len(row.tokens) for job, row in zip(jobs, rows)]
        # A tail carried past its row's budget is harmless: rollouts stop at `rollout`, scoring and commits at the
        # budget. (Cutting every row's tail to the shortest budget would redo the others' lookaheads.)
        rollout = [min(max(cfg.lookahead, cfg.commit) + 1, left) for left in remaining]

        candidates = [
            [Candidate(r, rank, tok, lp) for rank, (tok, lp) in enumerate(self.proposer.candidates(row.proposal))]
            for r, row in enumerate(rows)
        ]
        # Reuse: the candidate that equals a row's greedy tail continues it on the shared cache.
        reused = []
        for r, row in enumerate(rows):
            match = next((c for c in candidates[r] if c.token == row.tail.tokens[0]), None) if cfg.reuse else None
            if match is not None:
                match.branch, match.batch, match.batch_row = row.tail, batch, r
                reused.append(match)
        if reused:
            self.stats.candidates_rolled_out += len(reused)
            self._rollout(batch, [row.tail for row in rows], rollout, active={c.row for c in reused}, left=remaining,
                          before=[self._history(row) for row in rows])
            self._score(rows, reused)

        # Pruning: skip candidates that cannot enter the beam even with the best possible reward.
        threshold = self._thresholds(rows, reused)
        pending = [c for cands in candidates for c in cands if c.branch is None]
        if cfg.prune:
            survivors = [c for c in pending if rows[c.row].logp + c.logp + cfg.reward_weight
                         * self._reward_bound(rows[c.row], c, remaining[c.row]) >= threshold[rows[c.row].prompt]]
        else:
            survivors = pending
        self.stats.candidates_pruned += len(pending) - len(survivors)
        if survivors:
            eos = self.lm.eos_token_ids
            fresh = self.lm.gather([(batch, c.row) for c in survivors], committed)
            branches = [Branch([c.token], [c.logp], constraint=_advanced(rows[c.row].constraint, c.token, eos))
                        for c in survivors]
            for i, (c, branch) in enumerate(zip(survivors, branches)):
                c.branch, c.batch, c.batch_row = branch, fresh, i
            self.stats.candidates_rolled_out += len(survivors)
            self._rollout(fresh, branches, [rollout[c.row] for c in survivors], active=set(range(len(survivors))),
                          left=[remaining[c.row] for c in survivors],
                          before=[self._history(rows[c.row]) for c in survivors])
            self._score(rows, survivors, threshold if cfg.prune else None)

        winners = self._select(rows, candidates)
        if cfg.trace:
            self._record(rows, candidates, winners)
        return self._commit(state, winners)

    # -- pieces of a step ------------------------------------------------------------------------------------
    def _history(self, row: Row) -> list[int] | None:
        """The tokens before a row's next position (prompt + committed), where repetition penalties need them."""
        return self.jobs[row.prompt].prompt.ids + row.tokens if self.histories else None

    def _reward_bound(self, row: Row, c: Candidate, remaining: int) -> float:
        """The most the rewards can give candidate `c` of `row` (rewards like `Fluency` know a bound tighter than
        their range from the answer's likelihood so far; the lookahead scores at most `lookahead` more tokens)."""
        job = self.jobs[row.prompt]
        if not job.tight:
            return job.reward_max
        more = min(self.config.lookahead + 1, remaining) - 1
        return job.rewards.upper_bound(row.logp + c.logp, len(row.tokens) + 1, more)

    def _rollout(self, batch: Rows, branches: list[Branch], lengths: list[int], active: set[int],
                 left: list[int], before: list[list[int] | None]) -> None:
        """Extend the `active` branches greedily, one batched forward per token, until `lengths[i]` tokens or EOS.
        `left[i]`: the budget left before branch i (output constraints close the output as it runs out);
        `before[i]`: the token history before it (None when no repetition penalty needs it)."""
        eos = self.lm.eos_token_ids
        while True:
            need = [i in active and len(b.tokens) < lengths[i] and b.tokens[-1] not in eos for i, b in
                    enumerate(branches)]
            if not any(need):
                return
            feed = [b.tokens[-1] if n else self.lm.pad_token_id for b, n in zip(branches, need)]
            scores = self.lm.step(batch, feed, need)
            self._count(len(feed), sum(need))
            self.stats.rollout_tokens += sum(need)
            rows_needing = [i for i, n in enumerate(need) if n]
            allowed = [branches[i].constraint.allowed(left[i] - len(branches[i].tokens))
                       if branches[i].constraint is not None else None for i in rows_needing]
            histories = [before[i] + branches[i].tokens for i in rows_needing] if self.histories else None
            for i, proposal in zip(rows_needing, self.proposer.propose(scores, rows_needing, allowed, histories)):
                branch = branches[i]
                branch.after.append(proposal)
                branch.tokens.append(proposal.greedy)
                branch.logps.append(proposal.greedy_logp)
                if branch.constraint is not None and proposal.greedy not in eos:
                    branch.constraint.consume(proposal.greedy)

    def _score(self, rows: list[Row], cands: list[Candidate], threshold: dict[int, float] | None = None) -> None:
        if not cands:
            return
        cfg, eos = self.config, self.lm.eos_token_ids
        bodies, mean_logps = [], []
        for c in cands:
            row, job = rows[c.row], self.jobs[rows[c.row].prompt]
            ext = c.branch.tokens[:min(cfg.lookahead + 1, job.config.max_new_tokens - len(row.tokens))]
            ended = next((j for j, t in enumerate(ext) if t in eos), None)
            c.final = ended is not None or len(row.tokens) + len(ext) >= job.config.max_new_tokens
            bodies.append(row.tokens + (ext if ended is None else ext[:ended]))
            scored = len(ext) if ended is None else ended + 1  # an EOS that ends the text counts
            mean_logps.append((row.logp + sum(c.branch.logps[:scored])) / (len(row.tokens) + scored))
        texts = self.lm.decode_batch(bodies)
        for c, text, mean_logp in zip(cands, texts, mean_logps):
            c.mean_logp = mean_logp
            c.text, hit = cut_at_stop(text, self.jobs[rows[c.row].prompt].config.stop)
            c.final = c.final or hit

        groups: dict[int, list[Candidate]] = {}  # candidates of prompts that share a reward sum are scored together
        for c in cands:
            groups.setdefault(id(self.jobs[rows[c.row].prompt].scorer), []).append(c)
        for group in groups.values():
            def keep(i: int, reward_bound: float, group: list[Candidate] = group) -> bool:
                c = group[i]
                return rows[c.row].logp + c.logp + cfg.reward_weight * reward_bound >= threshold[rows[c.row].prompt]

            staged = keep if threshold is not None and cfg.reward_weight else None
            scorer = self.jobs[rows[group[0].row].prompt].scorer
            try:
                results = scorer([(rows[c.row].prompt, c.text, c.final, c.mean_logp) for c in group], staged)
            except RewardError as exc:
                if not self.isolate_errors:
                    raise
                for c in group:
                    self.errors[rows[c.row].prompt] = exc
                results = [None] * len(group)
            for c, scored in zip(group, results):
                if scored is None:  # cheap rewards already rule it out: expensive ones were skipped
                    c.skipped = True
                    self.stats.candidates_pruned += 1
                    continue
                # log P(prefix + candidate): in segment mode the committed lookahead tokens are the greedy rollout,
                # not a choice; counting their likelihood would favour bland, confident continuations over the reward.
                c.reward, c.components = scored
                c.score = rows[c.row].logp + c.logp + cfg.reward_weight * c.reward

    def _thresholds(self, rows: list[Row], scored: list[Candidate]) -> dict[int, float]:
        """Per prompt, the beam_width-th best score found so far (-inf while fewer are known)."""
        by_prompt: dict[int, list[float]] = {}
        for c in scored:
            by_prompt.setdefault(rows[c.row].prompt, []).append(c.score)
        out = {}
        for row in rows:
            scores = sorted(by_prompt.get(row.prompt, []), reverse=True)
            out[row.prompt] = scores[self.config.beam_width - 1] if len(scores) >= self.config.beam_width else -math.inf
        return out

    def _select(self, rows: list[Row], candidates: list[list[Candidate]]) -> dict[int, list[Candidate]]:
        by_prompt: dict[int, list[Candidate]] = {}
        for cands in candidates:
            for c in cands:
                if c.branch is not None and not c.skipped:
                    by_prompt.setdefault(rows[c.row].prompt, []).append(c)
        winners, last = {}, {}
        for prompt, cands in by_prompt.items():
            if prompt in self.errors:
                continue
            ranked = sorted(cands, key=lambda c: (-c.score, c.row, c.rank))
            last[prompt] = ranked[min(self.config.beam_width, len(ranked)) - 1].score
            if ranked[0].score == -math.inf:
                self.fallback.add(prompt)  # every candidate vetoed: keep the likeliest, flagged
            winners[prompt] = ranked[: self.config.beam_width]
        for cands in candidates:  # the profile: candidates no rollout order could have skipped
            for c in cands:
                row = rows[c.row]
                if row.prompt in last:
                    left = self.jobs[row.prompt].config.max_new_tokens - len(row.tokens)
                    self.stats.candidates_needed += (row.logp + c.logp + self.config.reward_weight
                                                     * self._reward_bound(row, c, left) >= last[row.prompt])
        return winners

    def _commit(self, state: State, winners: dict[int, list[Candidate]]) -> StepUpdate:
        """Append each winner's first `commit` tokens (fewer where the budget ends); finished rows leave, the rest
        move to a new cache."""
        eos, rows = self.lm.eos_token_ids, state.rows
        new_rows, picks, update = [], [], StepUpdate({}, {})
        for prompt, chosen in winners.items():
            job = self.jobs[prompt]
            commit = min(self.config.commit, job.config.max_new_tokens - len(rows[chosen[0].row].tokens))
            for c in chosen:
                row, branch = rows[c.row], c.branch
                n = min(commit, len(branch.tokens))
                step_tokens = branch.tokens[:n]
                ended = next((j for j, t in enumerate(step_tokens) if t in eos), None)
                tokens = row.tokens + (step_tokens if ended is None else step_tokens[:ended])
                logp = row.logp + sum(branch.logps[:n])
                hit = self._stopped(job, tokens, n)
                reason = "eos" if ended is not None else "stop" if hit else (
                    "length" if len(tokens) >= job.config.max_new_tokens else None)
                # the output format's state after the committed tokens (the branch's, rolled back over the tail)
                after = None
                if branch.constraint is not None:
                    after = branch.constraint.fork()
                    after.rollback(_fed(branch.tokens[n if ended is None else ended:], eos))
                if reason:
                    complete = after is None or after.accepting
                    self.finished[prompt].append(Finished(tokens, logp, c.score, reason, prompt in self.fallback,
                                                          complete, after is not None and after.closed_early))
                    continue
                tail = Branch(branch.tokens[n:], branch.logps[n:], branch.after[n:], branch.constraint)
                new_rows.append(Row(prompt, tokens, logp, branch.after[n - 1], tail, after))
                picks.append((c.batch, c.batch_row))
            best = chosen[0]
            update.tokens[prompt] = rows[best.row].tokens + best.branch.tokens[:commit]
        live = {r.prompt for r in new_rows}
        for prompt in winners:
            if prompt not in live:
                update.finished[prompt] = max(self.finished[prompt], key=lambda f: f.score)
        state.rows = new_rows
        if not new_rows:
            return update
        # Rows may come from the shared cache and from fresh rollouts of different lengths: cut to the shortest
        # and shorten the tails to match (they are simply topped up next step).
        length = min(batch.length for batch, _ in picks)
        state.cache = self.lm.gather(picks, length)
        state.committed += self.config.commit  # every row that stays committed exactly this many
        for row in new_rows:
            self._truncate(row.tail, length - state.committed)
        return update

    def _stopped(self, job: Job, tokens: list[int], new: int) -> bool:
        """Whether the newest `new` tokens completed a stop string (only a window of the text is decoded)."""
        if not job.stop_span:
            return False
        return cut_at_stop(self.lm.decode(tokens[-(new + job.stop_span):]), job.config.stop)[1]

    def _truncate(self, branch: Branch, fed: int) -> None:
        """Keep the first `fed` fed tokens of a branch (plus the unfed one after them)."""
        if len(branch.tokens) > fed + 1:
            if branch.constraint is not None:
                branch.constraint.rollback(_fed(branch.tokens[fed + 1:], self.lm.eos_token_ids))
            del branch.tokens[fed + 1:], branch.logps[fed + 1:]
        del branch.after[fed:]

    def _record(self, rows: list[Row], candidates: list[list[Candidate]], winners: dict[int, list[Candidate]]):
        decode = self.lm.decode
        won = {id(c) for chosen in winners.values() for c in chosen}
        for r, cands in enumerate(candidates):
            row = rows[r]
            self.traces[row.prompt].append(StepTrace(
                step=self.stats.steps,
                beam=r,
                prefix=decode(row.tokens),
                candidates=[
                    CandidateTrace(
                        token=decode([c.token], keep_special=True),
                        lookahead=decode(c.branch.tokens[1: self.config.lookahead + 1], keep_special=True)
                        if c.branch else "",
                        logprob=c.logp,
                        rewards=c.components,
                        score=c.score if c.branch and not c.skipped else None,
                        status="won" if id(c) in won else "lost" if c.branch and not c.skipped else "pruned",
                    )
                    for c in cands
                ],
            ))

    def _count(self, rows: int, tokens: int) -> None:
        self.stats.forward_passes += 1
        self.stats.tokens_evaluated += tokens
