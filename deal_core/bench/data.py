"""Evaluation data: CommonGen concept sets and AdvBench behaviours.

The files ship inside the package (`deal_core/bench/files/`, sources and licences in its README), so benchmarks
work after `pip install` from any directory. `--data FILE` wins, then `$DEAL_DATA_DIR`, then the shipped files.
"""

from __future__ import annotations

import csv
import itertools
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


def data_path(path: str | os.PathLike | None, default_name: str) -> Path:
    """`path` checked when given, else `default_name` in `data_dir()` (a DataError that says what to pass if absent)."""
    if path is not None:
        return data_file(path)
    file = data_dir() / default_name
    if not file.is_file():
        raise DataError(f"{default_name} not found in {file.parent}; pass --data FILE or fix DEAL_DATA_DIR")
    return file


HALVES = ("dev", "test", "all")  # safety benches: settings are chosen on dev rows, reported on test rows
SPLITS = {"all": (1, 99), "easy": (1, 3), "hard": (4, 99), "hard-dev": (4, 99), "hard-test": (4, 99)}
# by number of concepts (the dev data has 3, 4 and 5); hard-dev / hard-test: the first / second half of the hard sets
# (in the order `hard` takes them): reward internals are tuned on hard-dev, results reported on hard-test


def load_commongen(path: str | os.PathLike | None = None, limit: int | None = None,
                   split: str = "all") -> list[ConceptSet]:
    """CommonGen rows (`concept_set` like `dance_V#kid_N`), in file order. `split`: all, easy (3 concepts) or hard
    (4-5 concepts: the sets where the reward is hard to satisfy), hard-dev or hard-test (its first or second half:
    tune on one, report on the other)."""
    if split not in SPLITS:
        raise DataError(f"unknown CommonGen split {split!r}; choose one of: {', '.join(SPLITS)}")
    low, high = SPLITS[split]
    file = data_path(path, "commongen_dev.jsonl")
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
            if low <= len(concepts) <= high:
                sets.append(ConceptSet(concepts, list(row.get("scene", []))))
            if limit and split == "all" and len(sets) >= limit:
                break
    if split != "all":  # the file is sorted by size: take the sizes in turn, so a limit gets a mix
        by_size: dict[int, list[ConceptSet]] = {}
        for s in sets:
            by_size.setdefault(len(s.concepts), []).append(s)
        columns = [by_size[n] for n in sorted(by_size)]
        sets = [s for group in itertools.zip_longest(*columns) for s in group if s is not None]
        half = len(sets) // 2
        sets = sets[:half] if split.endswith("-dev") else sets[half:] if split.endswith("-test") else sets
    return sets[:limit] if limit else sets


@dataclass(frozen=True)
class Behaviour:
    goal: str
    target: str


def load_advbench(path: str | os.PathLike | None = None, limit: int | None = None) -> list[Behaviour]:
    file = data_path(path, "advbench_dev.csv")
    with open(file, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        if not {"goal", "target"} <= set(reader.fieldnames or ()):
            raise DataError(f"{file}: an AdvBench CSV needs 'goal' and 'target' columns, found {reader.fieldnames}")
        rows = [Behaviour(r["goal"], r["target"]) for r in reader]
    return rows[:limit] if limit else rows
