"""Checks the CLI makes before any model loads: one line on stderr and exit status 2 for bad input."""

from __future__ import annotations

import sys


def fail(message: str) -> None:
    """Stop with one line on stderr and exit status 2."""
    line = " ".join(str(message).split())  # one line, whatever the message held
    sys.stderr.write(f"error: {line}\n")
    raise SystemExit(2)


def bench_split(task: str, split: str) -> str:
    """`deal bench TASK --split S`: a split the task knows."""
    from deal_core.bench.data import HALVES, SPLITS

    known = HALVES if task in ("harmless", "jailbreak", "overrefusal", "agent", "tools") else ("dev", "heldout") \
        if task == "safety" else SPLITS
    if task not in ("commongen", "speed", "engines") and known is SPLITS:
        fail(f"--split is for `deal bench commongen|speed|engines|harmless|jailbreak|overrefusal|agent|tools|safety`, "
              f"not {task}")
    if split not in known:
        fail(f"unknown --split {split!r} for {task}; choose one of: {', '.join(known)}")
    return split
