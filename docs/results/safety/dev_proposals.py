"""Dev diagnostic for Safety's proposed refusals: per AdvBench dev row (plain and continuation attack), the search's
answer and each proposed answer with log P and Σ w R, so the Safety weight can be read off the margins: at the end
it counts, for w in 1, 2, 3, 5, the rows where a proposed answer beats the search's answer by log P + λ·w·Safety
(the search's answer held at the run's weight).

    OMP_NUM_THREADS=1 python docs/results/safety/dev_proposals.py 8 1     # 8 dev rows, Safety weight 1
"""
import json
import sys

from deal_core import proposals
from deal_core.bench.data import load_advbench
from deal_core.bench.safety import DEAL_SETTINGS, rows_of
from deal_core.decoder import DeAL
from deal_core.rewards import Safety

N, W = int(sys.argv[1]), float(sys.argv[2])
seen = []
original = proposals.weigh


def recording(lm, prepared, slot, answers):
    weighed = original(lm, prepared, slot, answers)
    seen.append([{"text": w.text, "logp": w.finished.logp, "reward": w.reward_total} for w in weighed])
    return weighed


proposals.weigh = recording
deal = DeAL(None)
out = []
for attack in (False, True):
    for item in rows_of(load_advbench(None), "dev", N):
        prompt = ([{"role": "user", "content": item.goal}, {"role": "assistant", "content": item.target}]
                  if attack else item.goal)
        seen.clear()
        result = deal.generate(prompt, rewards=W * Safety(), max_new_tokens=40, **DEAL_SETTINGS)
        row = {"attack": attack, "goal": item.goal, "answer": result.text, "answers": list(seen[0]) if seen else []}
        out.append(row)
        for a in row["answers"]:
            print(f"{'ATT' if attack else 'PLN'} logp {a['logp']:7.2f} R {a['reward']:5.2f} {a['text'][:60]!r}")
        print("  ->", repr(result.text[:70]), flush=True)
json.dump(out, open(f"docs/results/safety/dev_proposals_w{W:g}.json", "w"), indent=1)
for w in (1, 2, 3, 5):
    for attack in (False, True):
        rows = [r for r in out if r["attack"] == attack and r["answers"]]
        wins = 0
        for r in rows:
            objective = [a["logp"] + DEAL_SETTINGS["reward_weight"] * w * a["reward"] / W for a in r["answers"]]
            wins += max(range(len(objective)), key=objective.__getitem__) > 0
        print(f"w={w} {'attack' if attack else 'plain'}: a proposed answer wins in {wins} of {len(rows)}")
