"""`deal batch IN.jsonl OUT.jsonl`: align every row of a JSONL file, in this process or on a Ray cluster.

Input rows: `{"id": 1, "prompt": "..."}` or `{"id": "a", "messages": [{"role": "user", "content": "..."}]}`, with an
optional `"rewards": [{"name": "keywords", "keywords": ["dog"], "weight": 1.0}]` (JSON specs, read through the
reward registry: only registered rewards can be named) that replaces the job's default rewards for that row.
Output rows (one JSON line each, appended as they finish):

    {"id": 1, "text": "...", "rewards": {"keywords": 1.0}, "reward_total": 1.0, "finish_reason": "eos",
     "usage": {"prompt_tokens": 31, "completion_tokens": 12, ...}, "stats": {"batch_rows": 4, ...}}
    {"id": 2, "error": "ContextLengthError: ...", "error_type": "ContextLengthError"}

Rows that share their rewards run together through `DeAL.generate_batch` in chunks of `batch_size` (one search,
one forward pass per step for the chunk); a chunk that fails is retried row by row, so one bad row becomes one
error line and the job goes on. A rerun skips every id already in OUT (`retry_errors=True` retries the error rows).
With Ray, the same chunks are the rows of a Ray Data dataset mapped by `map_batches` over a fixed pool of actors,
each holding one loaded model (`DeALReplica`); results are identical to the local run (`tests/ray`).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deal_core.config import DeALConfig, make_config
from deal_core.errors import ConfigError, DeALError, check_text, short_repr

ROW_KEYS = ("id", "prompt", "messages", "rewards")
# Environment a Ray worker needs to find the cached model and stay off the Hub (a remote node gets them too).
FORWARDED_ENV = ("DEAL_CACHE_DIR", "DEAL_ALLOW_DOWNLOAD", "HF_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
RAY_EXTRA = "pip install 'deal-align[ray]'"


class BatchInputError(DeALError, ValueError):
    """A line of the input (or output) file cannot be used; the message names the file and line."""


class RayMissingError(DeALError, ImportError):
    """`--ray` was asked for but Ray (the `ray` extra) is not installed."""


class ReplicaError(DeALError, RuntimeError):
    """A Ray replica could not start (e.g. its model would not load); the message carries the replica's error."""


def replica_error(exc: BaseException) -> DeALError | None:
    """The library error behind a Ray failure: Ray hands back an actor's failed start as text, so this finds the
    last `deal_core…Error: message` line in it."""
    import re

    if isinstance(exc, DeALError):
        return exc
    found = re.findall(r"deal_core(?:\.\w+)*\.(\w+(?:Error|Timeout)): ([^\n]+)", str(exc))
    if not found:
        return None
    name, message = found[-1]
    return ReplicaError(f"a Ray replica failed: {name}: {message}")


@dataclass(frozen=True)
class BatchRow:
    """One validated input row: `prompt` is a string or a list of messages; `rewards` None means the defaults."""

    line: int
    id: str | int
    prompt: str | list[dict[str, Any]]
    rewards: list[dict[str, Any]] | None = None

    @property
    def group(self) -> str:
        """Rows with the same group share their rewards and can run in one batched search."""
        return "default" if self.rewards is None else json.dumps(self.rewards, sort_keys=True)

    def payload(self) -> dict[str, Any]:
        return {"id": self.id, "prompt": self.prompt, "rewards": self.rewards}


def id_key(row_id: Any) -> str:
    """Ids compare by their JSON form: the int 1 and the string "1" are different rows."""
    return json.dumps(row_id)


def _row(path: Path, line: int, text: str) -> BatchRow:
    from deal_core.request import Request
    from deal_core.rewards import rewards_from_json

    where = f"{path}:{line}"
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise BatchInputError(f"{where} is not valid JSON ({exc}): write one JSON object per line") from None
    if not isinstance(data, dict):
        raise BatchInputError(f'{where} must be a JSON object like {{"id": 1, "prompt": "..."}}, '
                              f"got {short_repr(data)}")
    unknown = sorted(set(data) - set(ROW_KEYS))
    if unknown:
        raise BatchInputError(f"{where} has unknown key(s) {', '.join(map(short_repr, unknown))}: a row may hold "
                              f"only {', '.join(ROW_KEYS)}")
    row_id = data.get("id")
    if isinstance(row_id, bool) or not isinstance(row_id, (str, int)) or row_id == "":
        raise BatchInputError(f'{where} needs an "id" that is a non-empty string or an integer, '
                              f"got {short_repr(row_id)}")
    try:
        if isinstance(row_id, str):
            check_text(row_id, "id")
        has_prompt, has_messages = "prompt" in data, "messages" in data
        if has_prompt == has_messages:
            raise BatchInputError(f'{where} (id {short_repr(row_id)}) needs exactly one of "prompt" (a string) '
                                  f'or "messages" (a list of chat messages)')
        prompt = data["prompt"] if has_prompt else data["messages"]
        if has_prompt and not isinstance(prompt, str):
            raise BatchInputError(f'{where} (id {short_repr(row_id)}): "prompt" must be a string, got '
                                  f'{short_repr(prompt)}; put chat turns in "messages"')
        if has_messages and not isinstance(prompt, list):
            raise BatchInputError(f'{where} (id {short_repr(row_id)}): "messages" must be a list of '
                                  f'{{"role", "content"}} objects, got {short_repr(prompt)}')
        Request.of(prompt)  # roles, content, lone surrogates: checked here, before any model loads
        rewards = data.get("rewards")
        if rewards is not None:
            rewards_from_json(rewards)  # only registered rewards, each field validated
    except BatchInputError:
        raise
    except DeALError as exc:
        raise BatchInputError(f"{where} (id {short_repr(row_id)}): {exc}") from None
    return BatchRow(line=line, id=row_id, prompt=prompt, rewards=rewards)


def read_rows(path: str | os.PathLike) -> list[BatchRow]:
    """Every row of a JSONL input file, validated; blank lines are skipped; ids must be unique."""
    path = Path(path)
    if not path.is_file():
        raise BatchInputError(f"input file {str(path)!r} does not exist; pass an existing JSONL file")
    rows: list[BatchRow] = []
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8", errors="strict") as lines:
        try:
            for number, text in enumerate(lines, start=1):
                if not text.strip():
                    continue
                row = _row(path, number, text)
                key = id_key(row.id)
                if key in seen:
                    raise BatchInputError(f"{path}:{number} repeats id {short_repr(row.id)} (first on line "
                                          f"{seen[key]}): every row needs its own id")
                seen[key] = number
                rows.append(row)
        except UnicodeDecodeError as exc:
            raise BatchInputError(f"{path} is not UTF-8 text ({exc}): save it as UTF-8") from None
    if not rows:
        raise BatchInputError(f"{path} holds no rows: write one JSON object per line")
    return rows


def finished_ids(path: str | os.PathLike, retry_errors: bool = False) -> set[str]:
    """Ids (as `id_key`) already written to OUT. A last line cut short by a killed job is removed; with
    `retry_errors`, error lines are removed too (their rows run again)."""
    path = Path(path)
    if not path.exists():
        return set()
    raw = path.read_bytes()
    keep: list[bytes] = []
    done: set[str] = set()
    changed = False
    lines = raw.split(b"\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if not isinstance(data, dict) or "id" not in data:
                raise ValueError("not a result row with an id")
        except ValueError as exc:
            if number == len(lines):  # the last line, without its newline: a write cut short
                changed = True
                continue
            raise BatchInputError(f"{path}:{number} is not a result row ({exc}): fix or delete that line, or write "
                                  "to a new output file") from None
        if retry_errors and "error" in data:
            changed = True
            continue
        keep.append(line)
        done.add(id_key(data["id"]))
    if changed:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(b"".join(line + b"\n" for line in keep))
        tmp.replace(path)
    return done


def chunks(rows: Iterable[BatchRow], batch_size: int) -> list[list[BatchRow]]:
    """Rows grouped by rewards (groups in order of first appearance), each group cut into `batch_size` chunks."""
    groups: dict[str, list[BatchRow]] = {}
    for row in rows:
        groups.setdefault(row.group, []).append(row)
    return [group[i:i + batch_size] for group in groups.values() for i in range(0, len(group), batch_size)]


def _worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _ok(row: Mapping[str, Any], result: Any, batch_rows: int) -> dict[str, Any]:
    stats = result.stats
    return {"id": row["id"], "text": result.text, "rewards": result.rewards, "reward_total": result.reward_total,
            "finish_reason": result.finish_reason, "usage": result.usage.model_dump(),
            "stats": {"batch_rows": batch_rows, "steps": stats.steps, "forward_passes": stats.forward_passes,
                      "tokens_evaluated": stats.tokens_evaluated, "wall_time_s": stats.wall_time_s,
                      "worker": _worker()}}


def _failed(row: Mapping[str, Any], exc: BaseException) -> dict[str, Any]:
    return {"id": row["id"], "error": f"{type(exc).__name__}: {exc}", "error_type": type(exc).__name__,
            "stats": {"worker": _worker()}}


def run_chunk(deal: Any, chunk: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Align one chunk of row payloads that share their rewards (one batched search); if the search fails, each
    row runs alone, so only the rows at fault become error lines."""
    from deal_core.rewards import rewards_from_json

    specs = chunk[0]["rewards"]
    try:
        rewards = None if specs is None else rewards_from_json(specs)  # untrusted: through the registry again
    except DeALError as exc:
        return [_failed(row, exc) for row in chunk]
    try:
        results = deal.generate_batch([row["prompt"] for row in chunk], rewards=rewards)
    except Exception as exc:  # the rows at fault fail, the job goes on
        if len(chunk) > 1:
            return [out for row in chunk for out in run_chunk(deal, [row])]
        return [_failed(chunk[0], exc)]
    return [_ok(row, result, len(chunk)) for row, result in zip(chunk, results)]


class DeALReplica:
    """One model replica, the Ray Data actor class of `map_batches`: the model loads once, in the constructor; each
    call takes a batch of chunks (JSON lists of row payloads) and returns their results as JSON lists."""

    def __init__(self, model: str | None, config: dict[str, Any], reward_specs: list[dict[str, Any]] | None):
        from transformers.utils import logging as hf_logging

        from deal_core.decoder import DeAL
        from deal_core.rewards import rewards_from_json

        hf_logging.disable_progress_bar()
        self.deal = DeAL(model, rewards=rewards_from_json(reward_specs or []), config=make_config(**config))

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, list[str]]:
        return {"results": [json.dumps(run_chunk(self.deal, json.loads(str(c))), ensure_ascii=False)
                            for c in batch["chunk"]]}


@dataclass
class BatchReport:
    """What one `run_batch` call did."""

    rows: int  # rows in the input
    skipped: int  # already in OUT
    written: int = 0
    errors: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    first_result_s: float | None = None  # start-up cost: model load (and, on Ray, actor start) plus one chunk
    first_rows: int = 0  # rows of that first chunk
    mode: str = "local"
    replicas: int = 1
    results: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rows_per_s(self) -> float:
        return self.written / self.wall_s if self.wall_s else 0.0

    @property
    def steady_rows_per_s(self) -> float:
        """Rows/s after the first chunk: what a long job approaches once the start-up is paid."""
        if self.first_result_s is None or self.wall_s <= self.first_result_s:
            return 0.0
        return (self.written - self.first_rows) / (self.wall_s - self.first_result_s)

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.wall_s if self.wall_s else 0.0

    def line(self) -> str:
        where = "locally" if self.mode == "local" else f"on Ray ({self.replicas} replica{'s' * (self.replicas > 1)})"
        return (f"{self.written} rows written {where} ({self.errors} with errors, {self.skipped} already done) in "
                f"{self.wall_s:.1f} s: {self.rows_per_s:.2f} rows/s, {self.tokens_per_s:.1f} tokens/s")


def ray_available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("ray", "ray.data"))


def require_ray() -> None:
    if not ray_available():
        raise RayMissingError(f"--ray needs Ray (Ray Data and Ray Serve): {RAY_EXTRA}")


def connect_ray(address: str | None, num_cpus: int | None = None) -> bool:
    """Join the Ray cluster at `address` (None: start a local one, or join `$RAY_ADDRESS`); no-op when this process
    is already connected. Returns True when this call connected (so the caller disconnects)."""
    require_ray()
    import ray

    if ray.is_initialized():
        return False
    env = {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}
    options: dict[str, Any] = {"runtime_env": {"env_vars": env}} if env else {}
    options["logging_level"] = logging.WARNING  # Ray's start-up chatter (the job shows its own progress)
    if address in (None, "", "local"):
        ray.init(num_cpus=num_cpus, include_dashboard=False, **options)
    else:
        ray.init(address=address, **options)
    if threading.current_thread() is threading.main_thread():
        # Ray's core aborts the process on SIGTERM; end like Ctrl-C instead, so `disconnect_ray` runs and a
        # cluster this process started does not outlive it
        _SIGTERM["previous"] = signal.signal(signal.SIGTERM, _interrupt)
    return True


_SIGTERM: dict[str, Any] = {}


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def disconnect_ray() -> None:
    """Leave the cluster `connect_ray` joined (stopping it if it started it) and restore the SIGTERM handler."""
    import ray

    ray.shutdown()
    previous = _SIGTERM.pop("previous", None)
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)


def _ray_results(chunk_list: list[list[BatchRow]], model: str | None, config: DeALConfig,
                 reward_specs: list[dict[str, Any]] | None, replicas: int, num_cpus: float,
                 num_gpus: float) -> Iterator[list[dict[str, Any]]]:
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the job's own bar counts rows
    items = [{"chunk": json.dumps([r.payload() for r in chunk], ensure_ascii=False)} for chunk in chunk_list]
    # one block per chunk (up to 1,000): a block is what one actor takes at a time, so small blocks spread the work
    dataset = ray.data.from_items(items, override_num_blocks=min(len(items), 1000)).map_batches(
        DeALReplica, batch_size=1, compute=ray.data.ActorPoolStrategy(size=replicas),
        num_cpus=num_cpus, num_gpus=num_gpus,
        fn_constructor_kwargs={"model": model, "config": config.model_dump(mode="json"),
                               "reward_specs": reward_specs},
    )
    try:
        for item in dataset.iter_rows():
            yield json.loads(item["results"])
    except Exception as exc:
        cause = replica_error(exc)
        if cause is None:
            raise
        raise cause from exc


def _local_results(chunk_list: list[list[BatchRow]], model: str | None, config: DeALConfig,
                   reward_specs: list[dict[str, Any]] | None, deal: Any = None) -> Iterator[list[dict[str, Any]]]:
    from deal_core.decoder import DeAL
    from deal_core.rewards import rewards_from_json

    if deal is None:
        deal = DeAL(model, rewards=rewards_from_json(reward_specs or []), config=config)
    for chunk in chunk_list:
        yield run_chunk(deal, [r.payload() for r in chunk])


def run_batch(
    in_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    model: str | None = None,
    reward_specs: list[dict[str, Any]] | None = None,
    settings: Mapping[str, Any] | None = None,
    batch_size: int = 8,
    ray: bool = False,
    address: str | None = None,
    replicas: int = 1,
    num_cpus: float = 1,
    num_gpus: float = 0,
    retry_errors: bool = False,
    progress: bool = True,
    keep_results: bool = False,
    deal: Any = None,
) -> BatchReport:
    """Align the rows of IN that OUT does not hold yet and append their results to OUT.

    `reward_specs` are the default rewards (JSON specs) of rows without their own; `settings` any `DeALConfig`
    fields. With `ray=True` the work runs on the Ray cluster at `address` (None: a new local one, or
    `$RAY_ADDRESS`) over `replicas` actors with `num_cpus`/`num_gpus` each; a cluster this process is already
    connected to is used as it is. `deal` (local runs only) reuses an already built `DeAL`.
    """
    from deal_core.rewards import rewards_from_json

    if batch_size < 1 or replicas < 1 or num_cpus < 0 or num_gpus < 0:
        raise ConfigError(f"batch_size ({batch_size}) and replicas ({replicas}) must be >= 1, num_cpus "
                          f"({num_cpus}) and num_gpus ({num_gpus}) >= 0")
    if not ray and (address is not None or replicas != 1 or num_gpus):
        raise ConfigError("address, replicas and num_gpus are for Ray runs: pass ray=True (CLI: --ray)")
    if ray and deal is not None:
        raise ConfigError("a built DeAL object cannot be shipped to Ray actors: pass model=<name or path> instead")
    config = make_config(**{k: v for k, v in (settings or {}).items() if v is not None})
    if reward_specs is not None:
        rewards_from_json(reward_specs)  # fail before any work starts
    if ray:
        require_ray()
    rows = read_rows(in_path)
    out = Path(out_path)
    if out.exists() and out.is_dir():
        raise BatchInputError(f"output {str(out)!r} is a directory: pass a file path")
    try:  # before any model loads: an output that cannot be written is the user's to fix
        out.parent.mkdir(parents=True, exist_ok=True)
        out.open("a", encoding="utf-8").close()
    except OSError as exc:
        raise BatchInputError(f"cannot write the output {str(out)!r}: {exc.strerror or exc}; pass a path in a "
                              "writable directory") from None
    done = finished_ids(out, retry_errors)
    todo = [r for r in rows if id_key(r.id) not in done]
    report = BatchReport(rows=len(rows), skipped=len(rows) - len(todo), mode="ray" if ray else "local",
                         replicas=replicas)
    if not todo:
        return report
    chunk_list = chunks(todo, batch_size)
    start = time.perf_counter()
    connected = False
    try:
        if ray:
            connected = connect_ray(address, num_cpus=None)
            results = _ray_results(chunk_list, model, config, reward_specs, replicas, num_cpus, num_gpus)
        else:
            results = _local_results(chunk_list, model, config, reward_specs, deal)
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("a", encoding="utf-8") as sink, _progress(progress, len(todo)) as advance:
            for chunk_results in results:
                if report.first_result_s is None:
                    report.first_result_s, report.first_rows = time.perf_counter() - start, len(chunk_results)
                for result in chunk_results:
                    sink.write(json.dumps(result, ensure_ascii=False) + "\n")
                    report.written += 1
                    report.errors += "error" in result
                    report.completion_tokens += result.get("usage", {}).get("completion_tokens", 0)
                    if keep_results:
                        report.results.append(result)
                sink.flush()  # what is written survives a killed job: the rerun skips it
                advance(len(chunk_results))
    finally:
        report.wall_s = time.perf_counter() - start
        if connected:
            disconnect_ray()
    return report


class _progress:
    """A rich progress bar on stderr over the rows to do (or nothing)."""

    def __init__(self, show: bool, total: int):
        self.show, self.total, self._bar = show, total, None

    def __enter__(self) -> Callable[[int], None]:
        if not self.show:
            return lambda n: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(TextColumn("aligning rows"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                             console=Console(stderr=True))
        self._bar.__enter__()
        task = self._bar.add_task("rows", total=self.total)
        return lambda n: self._bar.advance(task, n)

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
