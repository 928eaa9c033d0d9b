"""Jobs: `deal batch IN.jsonl OUT.jsonl` aligns every row of a JSONL file, in this process or on a Ray cluster, and
`deal serve --ray` runs the server on Ray Serve. One file per part:

- `rows.py`        IN: each row read and validated, with its file and line, before any model loads (`read_rows`)
- `output.py`      OUT: checked writable, what it already holds (a rerun skips those ids: `finished_ids`),
                   results appended chunk by chunk (`append_results`)
- `chunks.py`      rows that share their rewards, `batch_size` at a time; one chunk is one batched search, a
                   failed chunk is retried row by row (`chunks`, `run_chunk`)
- `runner.py`      `run_batch`: the job, checks first, then local chunks or Ray's
- `report.py`      the progress bar and the `BatchReport` a job returns
- `ray_cluster.py` Ray installed or not, joining or starting a cluster and leaving it, a failed actor's error
- `ray_data.py`    the chunks as a Ray Data dataset over a fixed pool of actors (`DeALReplica`, one model each)
- `ray_serve.py`   `deal serve --ray`: the unchanged server app as a Ray Serve deployment

Rows that share their rewards run together through `DeAL.generate_batch` in chunks of `batch_size` (one search,
one forward pass per step for the chunk); a chunk that fails is retried row by row, so one bad row becomes one
error line and the job goes on. A rerun skips every id already in OUT (`retry_errors=True` retries the error rows).
With Ray, the same chunks run on the actors; results are identical to the local run (`tests/ray`).
"""

from deal_core.jobs.chunks import chunks, run_chunk
from deal_core.jobs.output import finished_ids
from deal_core.jobs.ray_cluster import (
    FORWARDED_ENV,
    RAY_EXTRA,
    RayMissingError,
    ReplicaError,
    connect_ray,
    disconnect_ray,
    ray_available,
    replica_error,
    require_ray,
)
from deal_core.jobs.ray_data import DeALReplica
from deal_core.jobs.report import BatchReport
from deal_core.jobs.rows import ROW_KEYS, BatchInputError, BatchRow, id_key, read_rows
from deal_core.jobs.runner import run_batch

__all__ = [
    "FORWARDED_ENV", "RAY_EXTRA", "ROW_KEYS", "BatchInputError", "BatchReport", "BatchRow", "DeALReplica",
    "RayMissingError", "ReplicaError", "chunks", "connect_ray", "disconnect_ray", "finished_ids", "id_key",
    "ray_available", "read_rows", "replica_error", "require_ray", "run_batch", "run_chunk",
]
