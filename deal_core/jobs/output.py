"""OUT, the output file of `deal batch`: checked writable before any model loads, read back on a rerun (the ids it
holds are skipped: that is how a killed job resumes), and appended to chunk by chunk as results finish.

    {"id": 1, "text": "...", "rewards": {"keywords": 1.0}, "reward_total": 1.0, "finish_reason": "eos",
     "usage": {"prompt_tokens": 31, "completion_tokens": 12, ...}, "stats": {"batch_rows": 4, ...}}
    {"id": 2, "error": "ContextLengthError: ...", "error_type": "ContextLengthError"}
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from deal_core.jobs.report import BatchReport, ProgressBar
from deal_core.jobs.rows import BatchInputError, id_key


def writable_output(out_path: str | os.PathLike) -> Path:
    """OUT as a path, created (empty) if missing; an output that cannot be written is the user's to fix."""
    out = Path(out_path)
    if out.exists() and out.is_dir():
        raise BatchInputError(f"output {str(out)!r} is a directory: pass a file path")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.open("a", encoding="utf-8").close()
    except OSError as exc:
        raise BatchInputError(f"cannot write the output {str(out)!r}: {exc.strerror or exc}; pass a path in a "
                              "writable directory") from None
    return out


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


def append_results(results: Iterable[list[dict[str, Any]]], out: Path, report: BatchReport, start: float, *,
                   progress: bool, total: int, keep_results: bool) -> None:
    """Write each chunk's result rows to OUT as the chunk finishes, counting them in `report` (its first result
    timed from `start`); a progress bar over the `total` rows when `progress`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a", encoding="utf-8") as sink, ProgressBar(progress, total) as advance:
        for chunk_results in results:
            if report.first_result_s is None:
                report.first_result_s, report.first_rows = time.perf_counter() - start, len(chunk_results)
            for result in chunk_results:
                sink.write(json.dumps(result, ensure_ascii=False) + "\n")
                report.count(result, keep_results)
            sink.flush()  # what is written survives a killed job: the rerun skips it
            advance(len(chunk_results))
