"""Token ids of a fixed set of answers, for comparing the search before and after a change (issue 24, the
sequence-handle seam): CommonGen hard-split prompts with the Keywords reward, greedy / DeAL default / paper /
segment / beam 2 settings, each prompt alone and the same prompts as one batch.

    PYTHONPATH=/path/to/before .venv/bin/python docs/results/seam/tokens.py ENGINE before.json
    .venv/bin/python docs/results/seam/tokens.py ENGINE after.json [LIMIT [MAX_NEW_TOKENS]]
    then compare the two files (they hold {mode: [token ids per prompt]}).
"""

from __future__ import annotations

import json
import sys

from deal_core import DeAL
from deal_core.bench.data import load_commongen
from deal_core.rewards import Keywords

MODES = {
    "default k10 l8 λ3": dict(top_k=10, lookahead=8, reward_weight=3.0),
    "paper k5 l5 λ1": dict(top_k=5, lookahead=5, reward_weight=1.0),
    "segment k5 l8 c9": dict(top_k=5, lookahead=8, commit=9, reward_weight=1.0),
    "beam2 k4 l4 c2 λ2": dict(top_k=4, lookahead=4, commit=2, beam_width=2, reward_weight=2.0),
}


def main(engine: str, out: str, limit: int = 10, max_new_tokens: int = 48) -> None:
    sets = load_commongen(limit=limit, split="hard")
    deal = DeAL(engine=engine, max_new_tokens=max_new_tokens)
    report: dict[str, list[list[int]]] = {"greedy": [deal.greedy(s.prompt).token_ids for s in sets]}
    for name, settings in MODES.items():
        report[name] = [deal.generate(s.prompt, rewards=Keywords(keywords=s.concepts), **settings).token_ids
                        for s in sets]
    # one batched search over prompts that share a reward (prompts of different lengths, admitted together)
    shared = Keywords(keywords=sorted({c for s in sets[:4] for c in s.concepts}))
    report["batch default"] = [r.token_ids for r in deal.generate_batch([s.prompt for s in sets[:4]],
                                                                        rewards=shared, top_k=10, lookahead=8)]
    report["alone default"] = [deal.generate(s.prompt, rewards=shared, top_k=10, lookahead=8).token_ids
                               for s in sets[:4]]
    with open(out, "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *map(int, sys.argv[3:5]))
