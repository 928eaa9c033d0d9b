"""Ablation on the tuning half of `deal bench agent`: this code with tool_result_weight=0.

Run: OMP_NUM_THREADS=1 .venv/bin/python docs/results/agent_tune_no_result_use.py (writes the JSON beside it).
"""
import json

from langchain.agents import create_agent

from deal_core.rewards import ToolArguments
from langchain_deal import ChatDeAL
from deal_core.bench.agent import TOOLS, load_tasks, run_task

agent = create_agent(ChatDeAL(max_tokens=64, rewards=[ToolArguments()], tool_result_weight=0), tools=TOOLS)
rows = []
for t in load_tasks()[0::2]:
    rows.append(run_task(agent, t))
    r = rows[-1]
    print(r["ok"], t["question"], r.get("called"), repr(r["answer"][:90]), flush=True)
n = len(rows)
summary = {"tasks": n, "success": sum(r["ok"] for r in rows) / n, "calls_per_task": sum(r["calls"] for r in rows) / n,
           "leaks": sum(r["leak"] for r in rows) / n, "markup": sum(r["markup"] for r in rows) / n,
           "empty_answers": sum(not r["answer"].strip() for r in rows),
           "seconds_per_task": sum(r["seconds"] for r in rows) / n}
print(summary)
json.dump({"settings": {"half": "tune", "tool_result_weight": 0, "max_new_tokens": 64}, "summary": summary,
           "rows": rows}, open("docs/results/agent_tune_no_result_use.json", "w"), indent=1)
