"""`deal bench agent`: ~30 shipped tasks (`deal_core/bench/files/agent_tasks.jsonl`, written for this project) run
through LangChain's real `create_agent` loop with four tools bound (a calculator, unit conversion, a weather stub and
a country lookup table), the default `tool_choice="auto"` (decided by `ToolNeed`) and no middleware; what
`ChatDeAL` does by itself is in (`ToolResultUse` on answer turns, the cut-call retry: `deal_core/tool_turns.py`).

Success: the final answer contains the task's value (never a number of the question itself). Also reported: tool
calls per task; leaks: answers holding a phrase of the library's prompt wording (the tool prompt, the call format,
earlier result wording); markup: answers holding a tag (`<user_message>`, `<string_error>`: the 135M model imitates
the call tags it sees) or a call's JSON (`{"name":`, `"arguments`), which are not the library's words but are not
answers either. Empty answers: final answers with no text.

Needs the `langchain` extra: this module imports langchain at import time (it is only imported to run this bench)
and `langchain_deal` when it runs; the bench sits above the wrappers (the import contracts in pyproject.toml)."""

from __future__ import annotations

import json
import re
import time
from typing import Any, Literal

from langchain_core.messages import AIMessage
from langchain_core.tools import tool

from deal_core.bench.common import console, markdown_table, write_report
from deal_core.bench.data import data_path
from deal_core.rewards import ToolArguments

LEAK_PHRASES = ("You can call functions", "<tools>", "</tools>", "<tool_call", "function-name", "arguments-object",
                "each as a JSON schema", "returned:", "Use this result", "Use these results", "tool_call_result")
MARKUP = re.compile(r'<[A-Za-z_/][A-Za-z_-]*>|"arguments|\{"name":')
WEATHER = {"paris": "Sunny, 21 degrees", "oslo": "Snow, -3 degrees", "tokyo": "Cloudy, 18 degrees",
           "cairo": "Clear, 35 degrees", "london": "Drizzle, 12 degrees", "seattle": "Light rain, 9 degrees",
           "sydney": "Sunny, 25 degrees"}
COUNTRIES = {"australia": ("Canberra", "26 million"), "japan": ("Tokyo", "125 million"),
             "canada": ("Ottawa", "40 million"), "brazil": ("Brasilia", "216 million"),
             "germany": ("Berlin", "84 million"), "kenya": ("Nairobi", "55 million"),
             "egypt": ("Cairo", "111 million"), "norway": ("Oslo", "5.5 million")}
UNITS = {("kilometers", "miles"): lambda v: v * 0.621371, ("miles", "kilometers"): lambda v: v / 0.621371,
         ("kilograms", "pounds"): lambda v: v * 2.20462, ("pounds", "kilograms"): lambda v: v / 2.20462,
         ("meters", "feet"): lambda v: v * 3.28084, ("feet", "meters"): lambda v: v / 3.28084,
         ("celsius", "fahrenheit"): lambda v: v * 9 / 5 + 32, ("fahrenheit", "celsius"): lambda v: (v - 32) * 5 / 9}
_ALIASES = {"km": "kilometers", "kilometer": "kilometers", "mile": "miles", "kg": "kilograms",
            "kilogram": "kilograms", "pound": "pounds", "lbs": "pounds", "meter": "meters", "m": "meters",
            "foot": "feet", "ft": "feet", "c": "celsius", "f": "fahrenheit"}


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


@tool
def calculator(a: float, operation: Literal["add", "subtract", "multiply", "divide"], b: float) -> str:
    """Do arithmetic on two numbers: add, subtract, multiply or divide."""
    ops = {"add": a + b, "subtract": a - b, "multiply": a * b, "divide": a / b if b else float("nan")}
    return _number(ops[operation])


@tool
def convert_units(value: float, from_unit: str, to_unit: str) -> str:
    """Convert a value between units of length, weight or temperature (kilometers, miles, kilograms, pounds,
    meters, feet, celsius, fahrenheit)."""
    key = tuple(_ALIASES.get(u.strip().lower(), u.strip().lower()) for u in (from_unit, to_unit))
    if key not in UNITS:
        return f"cannot convert {from_unit} to {to_unit}"
    return f"{_number(value)} {key[0]} is {_number(UNITS[key](value))} {key[1]}"


@tool
def get_weather(city: str) -> str:
    """Get the current weather in a city."""
    return WEATHER.get(city.strip().lower(), f"No weather data for {city}")


@tool
def lookup_country(country: str) -> str:
    """Look up a country's capital city and population."""
    found = COUNTRIES.get(country.strip().lower())
    return f"capital {found[0]}, population {found[1]}" if found else f"No data for {country}"


TOOLS = [calculator, convert_units, get_weather, lookup_country]


def load_tasks(path: str | None = None) -> list[dict[str, str]]:
    with open(data_path(path, "agent_tasks.jsonl"), encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def run_task(agent: Any, task: dict[str, str]) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        state = agent.invoke({"messages": [{"role": "user", "content": task["question"]}]},
                             config={"recursion_limit": 12})
    except Exception as exc:  # noqa: BLE001 - a failed task is reported with its reason
        return {"question": task["question"], "ok": False, "calls": 0, "leak": False, "markup": False,
                "answer": f"error: {exc}",
                "seconds": time.perf_counter() - start}
    calls = [c for m in state["messages"] if isinstance(m, AIMessage) for c in m.tool_calls]
    answer = state["messages"][-1].text if isinstance(state["messages"][-1], AIMessage) else ""
    wanted = [task["answer"]] if isinstance(task["answer"], str) else task["answer"]
    ok = all(w.lower() in answer.lower() for w in wanted) and (task.get("kind") != "no-tool" or not calls)
    return {"question": task["question"], "kind": task.get("kind", "one-tool"), "ok": ok, "calls": len(calls),
            "called": [f"{c['name']}({c['args']})" for c in calls], "answer": answer,
            "leak": any(p.lower() in answer.lower() for p in LEAK_PHRASES), "markup": bool(MARKUP.search(answer)),
            "seconds": time.perf_counter() - start}


def run(model: str | None = None, data: str | None = None, limit: int = 30, max_new_tokens: int = 64,
        json_out: str | None = None, split: str = "all", **_: Any) -> dict[str, Any]:
    from langchain.agents import create_agent

    from langchain_deal import ChatDeAL

    tasks = load_tasks(data)
    tasks = [t for t in tasks if split in ("all", t["split"])][:limit]  # "dev": tuned on; "test": only reported
    chat = ChatDeAL(model=model, max_tokens=max_new_tokens, rewards=[ToolArguments()])
    agent = create_agent(chat, tools=TOOLS)
    out, rows = console(), []
    for i, task in enumerate(tasks, 1):
        rows.append(run_task(agent, task))
        r = rows[-1]
        out.print(f"[{i}/{len(tasks)}] {'ok' if r['ok'] else '--'} {task['question']} -> {r.get('called')} "
                  f"{r['answer'][:80]!r}", highlight=False)
    n = max(len(rows), 1)
    summary = {"tasks": len(rows), "success": sum(r["ok"] for r in rows) / n,
               "calls_per_task": sum(r["calls"] for r in rows) / n, "leaks": sum(r["leak"] for r in rows) / n,
               "markup": sum(r["markup"] for r in rows) / n,
               "empty_answers": sum(not r["answer"].strip() for r in rows),
               "seconds_per_task": sum(r["seconds"] for r in rows) / n,
               "success_by_kind": {k: sum(r["ok"] for r in rows if r["kind"] == k) / sum(r["kind"] == k for r in rows)
                                   for k in sorted({r["kind"] for r in rows})}}
    table = (f"Agent tasks through create_agent, tool_choice='auto', no middleware ({split} split, {len(rows)} tasks, "
             f"max_tokens={max_new_tokens})\n\n" + markdown_table(
                 ["success", "calls / task", "answers with template phrases", "answers with markup", "empty answers",
                  "s / task"],
                 [[f"{100 * summary['success']:.0f}%", f"{summary['calls_per_task']:.2f}",
                   f"{100 * summary['leaks']:.0f}%", f"{100 * summary['markup']:.0f}%",
                   str(summary["empty_answers"]), f"{summary['seconds_per_task']:.1f}"]]))
    return write_report("agent", chat._decoder(), summary, rows, table, json_out, None,
                        {"limit": limit, "max_new_tokens": max_new_tokens, "split": split})
