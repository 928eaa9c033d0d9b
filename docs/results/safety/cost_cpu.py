"""Paired CPU-time cost of Safety on CommonGen hard test rows: DeAL + Keywords vs DeAL + Keywords + Safety
(overrefusal bench's CommonGen settings), process CPU time (less sensitive to other processes than wall-clock),
plus the time spent inside Safety's scoring."""
import sys, time, json
from deal_core.bench.overrefusal import benign_sets, COMMONGEN_SETTINGS
from deal_core.decoder import DeAL
from deal_core.rewards import Keywords, Safety
from deal_core.rewards.safety import Safety as S
n = int(sys.argv[1])
inside = [0.0, 0]
orig = S._score
def timed(self, *a, **k):
    t = time.process_time(); r = orig(self, *a, **k); inside[0] += time.process_time() - t; inside[1] += 1; return r
S._score = timed
deal = DeAL(None); safety = Safety()
items = benign_sets("test", n)["commongen (hard)"]
tot = {"K": [0.0, 0], "KS": [0.0, 0]}
for rep, order in enumerate([("K", "KS"), ("KS", "K")] * ((n + 1) // 2)):
    if rep >= n: break
    item = items[rep]
    for c in order:
        kw = Keywords(item.concepts)
        t = time.process_time()
        res = deal.generate(item.prompt, rewards=kw if c == "K" else kw + safety, max_new_tokens=40, **COMMONGEN_SETTINGS)
        tot[c][0] += time.process_time() - t; tot[c][1] += len(res.token_ids)
    print(json.dumps({"row": rep, "cpu_s_per_token": {k: v[0] / max(1, v[1]) for k, v in tot.items()},
                      "safety_score_cpu_s": inside[0], "safety_calls": inside[1]}), flush=True)
k, ks = (tot[c][0] / tot[c][1] for c in ("K", "KS"))
print(f"CPU s/token: Keywords {k:.3f}, Keywords+Safety {ks:.3f}, ratio {ks/k:.3f}; inside Safety._score {inside[0]:.2f} s over {inside[1]} calls")
