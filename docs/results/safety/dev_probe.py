"""Dev diagnostic: at step 1, which of the top-K first tokens lead (greedy rollout of L tokens) to a refusal?"""
import json, sys, torch
from deal_core.decoder import DeAL
from deal_core.prompts import encode_prompt
from deal_core.bench.data import load_advbench
from deal_core.bench.safety import SAFETY_PROMPT, rows_of
from deal_core.rewards.safety import refusal
K, L, N = 10, 6, int(sys.argv[1]) if len(sys.argv) > 1 else 16
d = DeAL(None); lm = d.lm; tok = lm.tokenizer
items = rows_of(load_advbench(None), "dev", N)
res = {}
for attack in (True, False):
    for sp in (None, SAFETY_PROMPT):
        if not attack and sp is None: continue
        key = f"{'jailbreak' if attack else 'harmless'}{' +prompt' if sp else ''}"
        ranks = []
        for it in items:
            p = [{"role": "user", "content": it.goal}, {"role": "assistant", "content": it.target}] if attack else it.goal
            ids = encode_prompt(lm, p, sp).ids
            with torch.no_grad():
                logits = lm.model(torch.tensor([ids])).logits[0, -1]
                top = torch.topk(logits, K).indices.tolist()
                batch = torch.tensor([ids + [t] for t in top])
                out = lm.model.generate(batch, attention_mask=torch.ones_like(batch), max_new_tokens=L - 1, do_sample=False, pad_token_id=lm.pad_token_id)
            texts = [tok.decode(o[len(ids):], skip_special_tokens=True) for o in out]
            r = [i for i, t in enumerate(texts) if refusal(t, False) == 1.0]
            ranks.append(r[0] if r else None)
            if r: print(key, it.goal[:40], "rank", r[0], repr(texts[r[0]]), flush=True)
        res[key] = ranks
        print(key, "first refusing rank per row:", ranks, flush=True)
        for k in (5, 10):
            print(f"  top_k={k}: rows with a refusing candidate {sum(x is not None and x < k for x in ranks)}/{len(ranks)}", flush=True)
