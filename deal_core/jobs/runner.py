"""`run_batch`, the job `deal batch IN.jsonl OUT.jsonl` runs: check everything before any model loads, skip the
rows OUT already holds, run the rest in chunks (here, or on Ray: `ray_data.py`) and append their results to OUT."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping
from typing import Any

from deal_core.config import DeALConfig, make_config
from deal_core.errors import ConfigError
from deal_core.jobs.chunks import chunks, run_chunk
from deal_core.jobs.output import append_results, finished_ids, writable_output
from deal_core.jobs.ray_cluster import connect_ray, disconnect_ray, require_ray
from deal_core.jobs.ray_data import ray_results
from deal_core.jobs.report import BatchReport
from deal_core.jobs.rows import BatchRow, id_key, read_rows


def _checked_options(*, ray: bool, batch_size: int, replicas: int, num_cpus: float, num_gpus: float,
                     address: str | None, deal: Any, settings: Mapping[str, Any] | None,
                     reward_specs: list[dict[str, Any]] | None) -> DeALConfig:
    """The job's search settings; a bad option, setting or reward spec fails here, before any work starts."""
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
    return config


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
    config = _checked_options(ray=ray, batch_size=batch_size, replicas=replicas, num_cpus=num_cpus,
                              num_gpus=num_gpus, address=address, deal=deal, settings=settings,
                              reward_specs=reward_specs)
    rows = read_rows(in_path)
    out = writable_output(out_path)
    done = finished_ids(out, retry_errors)
    todo = [r for r in rows if id_key(r.id) not in done]
    report = BatchReport(rows=len(rows), skipped=len(rows) - len(todo), mode="ray" if ray else "local",
                         replicas=replicas)
    if not todo:
        return report
    chunk_list = chunks(todo, batch_size)
    start, connected = time.perf_counter(), False
    try:
        if ray:
            connected = connect_ray(address, num_cpus=None)
            results = ray_results(chunk_list, model, config, reward_specs, replicas, num_cpus, num_gpus)
        else:
            results = _local_results(chunk_list, model, config, reward_specs, deal)
        append_results(results, out, report, start, progress=progress, total=len(todo), keep_results=keep_results)
    finally:
        report.wall_s = time.perf_counter() - start
        if connected:
            disconnect_ray()
    return report
