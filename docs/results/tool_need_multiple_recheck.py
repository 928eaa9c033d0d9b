"""Regression check (issue 26): the first N stored held-out BFCL `multiple` rows decoded again ("auto", "required").

Run: OMP_NUM_THREADS=1 .venv/bin/python docs/results/tool_need_multiple_recheck.py 10 \
         docs/results/tool_need_multiple_recheck.json
"""
import json
import sys

from deal_core.bench.tool_need import _decoded, cases, halves
from deal_core.decoder import DeAL

n = int(sys.argv[1])
stored = {r["prompt"]: r for r in json.load(open("docs/results/tool_need_multiple.json"))["rows"]}
_, held = halves(cases())
multi = [c for c in held if c.kind == "bfcl" and c.prompt in stored][:n]
deal = DeAL()
out = []
for c in multi:
    row = {m: _decoded(deal, c, m, 96) for m in ("auto", "required")}
    old = stored[c.prompt]
    same = {m: row[m]["text"] == old[m]["text"] for m in row}
    out.append({"prompt": c.prompt, "same_text": same, "args_now": {m: row[m]["args"] for m in row},
                "args_before": {m: old[m]["args"] for m in row}, "now": row})
    print(c.prompt[:60], same, {m: (old[m]["args"], row[m]["args"]) for m in row}, flush=True)
json.dump(out, open(sys.argv[2], "w"), indent=1)
