"""Benchmarks behind `deal bench TASK`."""

from __future__ import annotations

from typing import Any

from deal_core.errors import DeALError

TASKS: dict[str, str] = {
    "demo": "deal_core.bench.demo:run",
    "speed": "deal_core.bench.speed:run",
    "commongen": "deal_core.bench.commongen:run",
    "length": "deal_core.bench.length:run",
    "harmless": "deal_core.bench.safety:run_harmless",
    "jailbreak": "deal_core.bench.safety:run_jailbreak",
    "tradeoff": "deal_core.bench.tradeoff:run",
}


class UnknownTask(DeALError, ValueError):
    pass


def run_task(task: str, **options: Any) -> Any:
    import importlib

    if task not in TASKS:
        raise UnknownTask(f"unknown bench task {task!r}; choose one of: {', '.join(sorted(TASKS))}")
    module, _, function = TASKS[task].partition(":")
    return getattr(importlib.import_module(module), function)(**options)
