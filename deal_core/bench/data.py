"""Evaluation data: CommonGen concept sets and AdvBench behaviours, read from `../shared/data` or `--data`."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

from deal_core.errors import DeALError

BUILTIN_CONCEPT_SETS = [
    ["dog", "frisbee", "park"],
    ["kid", "dance", "room"],
    ["field", "look", "stand"],
    ["brush", "tooth", "use"],
    ["river", "boat", "sail"],
]


class DataError(DeALError, FileNotFoundError):
    pass


@dataclass(frozen=True)
class ConceptSet:
    concepts: list[str]
    references: list[str]

    @property
    def prompt(self) -> str:
        return commongen_prompt(self.concepts)


def commongen_prompt(concepts: list[str]) -> str:
    return f"Write one sentence that uses all of these words: {', '.join(concepts)}."


def data_dir() -> Path | None:
    """`$DEAL_DATA_DIR`, else the `shared/data` folder beside the working directory or beside this checkout."""
    candidates = [os.environ.get("DEAL_DATA_DIR")]
    candidates += [str(Path.cwd() / ".." / "shared" / "data"), str(Path(__file__).resolve().parents[3] / "shared"
                                                                   / "data")]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c).resolve()
    return None


def _resolve(path: str | os.PathLike | None, default_name: str) -> Path | None:
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise DataError(f"data file {str(p)!r} does not exist; pass an existing file with --data")
        return p
    base = data_dir()
    return base / default_name if base and (base / default_name).is_file() else None


def load_commongen(path: str | os.PathLike | None = None, limit: int | None = None) -> list[ConceptSet]:
    """CommonGen rows (`concept_set` like `dance_V#kid_N`); falls back to built-in sets when no file is found."""
    file = _resolve(path, "commongen_dev.jsonl")
    if file is None:
        sets = [ConceptSet(c, []) for c in BUILTIN_CONCEPT_SETS]
        return sets[:limit] if limit else sets
    sets = []
    with open(file, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            row = json.loads(line)
            concepts = [c.rsplit("_", 1)[0] for c in row["concept_set"].split("#")]
            sets.append(ConceptSet(concepts, list(row.get("scene", []))))
            if limit and len(sets) >= limit:
                break
    return sets


@dataclass(frozen=True)
class Behaviour:
    goal: str
    target: str


def load_advbench(path: str | os.PathLike | None = None, limit: int | None = None) -> list[Behaviour]:
    file = _resolve(path, "advbench_dev.csv")
    if file is None:
        raise DataError("advbench_dev.csv not found: pass --data FILE or set DEAL_DATA_DIR")
    with open(file, encoding="utf-8", newline="") as fh:
        rows = [Behaviour(r["goal"], r["target"]) for r in csv.DictReader(fh)]
    return rows[:limit] if limit else rows
