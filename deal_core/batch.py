"""Moved to `deal_core.jobs` (one file per part: rows, output, chunks, runner, report, Ray). This module stays so
that `from deal_core.batch import run_batch` keeps working; new code imports `deal_core.jobs`."""

from deal_core.jobs import (
    FORWARDED_ENV,
    RAY_EXTRA,
    ROW_KEYS,
    BatchInputError,
    BatchReport,
    BatchRow,
    DeALReplica,
    RayMissingError,
    ReplicaError,
    chunks,
    connect_ray,
    disconnect_ray,
    finished_ids,
    id_key,
    ray_available,
    read_rows,
    replica_error,
    require_ray,
    run_batch,
    run_chunk,
)

__all__ = [
    "FORWARDED_ENV", "RAY_EXTRA", "ROW_KEYS", "BatchInputError", "BatchReport", "BatchRow", "DeALReplica",
    "RayMissingError", "ReplicaError", "chunks", "connect_ray", "disconnect_ray", "finished_ids", "id_key",
    "ray_available", "read_rows", "replica_error", "require_ray", "run_batch", "run_chunk",
]
