"""The bench task registry: `deal bench TASK` runs `TASKS[TASK]`; adding a benchmark is one module plus one line
here (and its tunable settings in `TUNABLE` if `--top-k/--lookahead/--weight` apply). The CLI's help and checks
read these."""

from __future__ import annotations

from typing import Any

from deal_core.errors import ConfigError, DeALError

TASKS: dict[str, str] = {
    "demo": "deal_core.bench.demo:run",
    "speed": "deal_core.bench.speed:run",
    "engines": "deal_core.bench.engines:run",  # needs llama-cpp-python (extra: gguf)
    "commongen": "deal_core.bench.commongen:run",
    "length": "deal_core.bench.length:run",
    "harmless": "deal_core.bench.safety:run_harmless",
    "jailbreak": "deal_core.bench.safety:run_jailbreak",
    "overrefusal": "deal_core.bench.overrefusal:run",
    "safety": "deal_core.bench.safety_suite:run",
    "tradeoff": "deal_core.bench.tradeoff:run",
    "serve": "deal_core.bench.serve:run",
    "batch": "deal_core.bench.batch:run",
    "tools": "deal_core.bench.tools:run",
    "tool-need": "deal_core.bench.tool_need:run",
    "agent": "deal_core.bench.agent:run",  # needs langchain (extra: langchain)
}


# The search settings each task lets `--top-k/--lookahead/--weight` change (speed and demo compare fixed modes;
# tradeoff sweeps the weight itself).
TUNABLE_SETTINGS = ("top_k", "lookahead", "reward_weight")
_SEARCH = set(TUNABLE_SETTINGS)
TUNABLE: dict[str, set[str]] = {
    "commongen": _SEARCH, "length": _SEARCH, "harmless": _SEARCH, "jailbreak": _SEARCH, "overrefusal": _SEARCH,
    "safety": _SEARCH,
    "tradeoff": _SEARCH - {"reward_weight"},
    "serve": _SEARCH,
    "batch": _SEARCH,
    "tools": _SEARCH,
}


class UnknownTask(DeALError, ValueError):
    pass


def run_task(task: str, **options: Any) -> Any:
    import importlib

    if task not in TASKS:
        raise UnknownTask(f"unknown bench task {task!r}; choose one of: {', '.join(sorted(TASKS))}")
    fixed = set(options.get("settings") or {}) - TUNABLE.get(task, set())
    if fixed:
        raise ConfigError(f"bench {task} does not take {', '.join(sorted(fixed))}; "
                          f"it can change: {', '.join(sorted(TUNABLE.get(task, set()))) or 'nothing'}")
    module, _, function = TASKS[task].partition(":")
    return getattr(importlib.import_module(module), function)(**options)
