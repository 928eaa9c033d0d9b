"""Benchmarks behind `deal bench TASK`."""

from __future__ import annotations

from typing import Any

from deal_core.errors import DeALError

TASKS: dict[str, str] = {"demo": "deal_core.bench.demo", "speed": "deal_core.bench.speed"}


class UnknownTask(DeALError, ValueError):
    pass


def run_task(task: str, **options: Any) -> Any:
    import importlib

    if task not in TASKS:
        raise UnknownTask(f"unknown bench task {task!r}; choose one of: {', '.join(sorted(TASKS))}")
    return importlib.import_module(TASKS[task]).run(**options)
