"""Evaluation data: CommonGen concept sets and AdvBench behaviours.

The files ship inside the package (`deal_core/bench/files/`, sources and licences in its README), so benchmarks
work after `pip install` from any directory. `--data FILE` wins, then `$DEAL_DATA_DIR`, then the shipped files.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

from deal_core.errors import DeALError


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


PACKAGED_DATA = Path(__file__).resolve().parent / "files"


def data_dir() -> Path:
    """`$DEAL_DATA_DIR` when set, else the data shipped inside the package."""
    override = os.environ.get("DEAL_DATA_DIR")
    if override:
        path = Path(override).expanduser()
        if not path.is_dir():
            raise DataError(f"DEAL_DATA_DIR={override!r} is not a directory; unset it to use the shipped data")
        return path
    return PACKAGED_DATA


def data_file(path: str | os.PathLike) -> Path:
    """An explicit `--data` file, checked (the CLI calls it before loading any model)."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"data file {str(p)!r} does not exist; pass an existing file with --data")
    return p


def _resolve(path: str | os.PathLike | None, default_name: str) -> Path:
    if path is not None:
        return data_file(path)
    file = data_dir() / default_name
    if not file.is_file():
        raise DataError(f"{default_name} not found in {file.parent}; pass --data FILE or fix DEAL_DATA_DIR")
    return file


def load_commongen(path: str | os.PathLike | None = None, limit: int | None = None) -> list[ConceptSet]:
    """CommonGen rows (`concept_set` like `dance_V#kid_N`)."""
    file = _resolve(path, "commongen_dev.jsonl")
    sets = []
    with open(file, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                concepts = [c.rsplit("_", 1)[0] for c in row["concept_set"].split("#")]
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise DataError(f"{file}:{number}: not a CommonGen row with a 'concept_set' string ({exc})") from None
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
    with open(file, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        if not {"goal", "target"} <= set(reader.fieldnames or ()):
            raise DataError(f"{file}: an AdvBench CSV needs 'goal' and 'target' columns, found {reader.fieldnames}")
        rows = [Behaviour(r["goal"], r["target"]) for r in reader]
    return rows[:limit] if limit else rows
