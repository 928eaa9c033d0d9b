"""Chunks: input rows that share their rewards, cut `batch_size` at a time; one chunk is one batched search
(`DeAL.generate_batch`), and its results are output rows. A chunk that fails is retried row by row, so one bad row
becomes one error line and the job goes on. The same chunks run in this process and on Ray actors."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping
from typing import Any

from deal_core.errors import DeALError
from deal_core.jobs.rows import BatchRow


def chunks(rows: Iterable[BatchRow], batch_size: int) -> list[list[BatchRow]]:
    """Rows grouped by rewards (groups in order of first appearance), each group cut into `batch_size` chunks."""
    groups: dict[str, list[BatchRow]] = {}
    for row in rows:
        groups.setdefault(row.group, []).append(row)
    return [group[i:i + batch_size] for group in groups.values() for i in range(0, len(group), batch_size)]


def _worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _ok(row: Mapping[str, Any], result: Any, batch_rows: int) -> dict[str, Any]:
    summary = result.summary()
    summary["stats"] |= {"batch_rows": batch_rows, "worker": _worker()}
    return {"id": row["id"], "text": result.text, **summary, "usage": result.usage.model_dump()}


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
