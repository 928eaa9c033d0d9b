"""Benchmarks behind `deal bench TASK` (the registry: tasks.py)."""

from deal_core.bench.tasks import TASKS, TUNABLE, UnknownTask, run_task

__all__ = ["TASKS", "TUNABLE", "UnknownTask", "run_task"]
