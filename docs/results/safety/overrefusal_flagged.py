"""Over-refusal after Safety's proposed refusals, on the benign test halves of `deal bench overrefusal` (16 per set).

Only a request the prompt head flags gets proposals; every other request is answered token for token as before
(tests/unit/test_proposals.py, tests/integration/test_safety_embedded.py). This script lists the flagged benign
requests, answers each with the bench's DeAL settings and 2·Safety, and re-answers `--check N` unflagged
look-dangerous requests to compare them with the stored bench answers (docs/results/safety/overrefusal_test.json).

    OMP_NUM_THREADS=1 python docs/results/safety/overrefusal_flagged.py 2 > docs/results/safety/overrefusal_flagged.log
"""
import json
import sys
from pathlib import Path

from deal_core.bench.overrefusal import DEAL_SETTINGS, benign_sets
from deal_core.bench.safety import SAFETY_WEIGHT, verdict
from deal_core.decoder import DeAL
from deal_core.rewards import Safety

CHECK = int(sys.argv[1]) if len(sys.argv) > 1 else 2
stored = json.loads((Path(__file__).parent / "overrefusal_test.json").read_text())["rows"]
sets = benign_sets("test", 16)
safety = SAFETY_WEIGHT * Safety()
deal = DeAL(None)
for name, items in sets.items():
    requests = [i if isinstance(i, str) else i.prompt for i in items]
    flagged = [i for i, r in enumerate(requests) if safety.proposals(r)]
    print(f"{name}: {len(flagged)} of {len(requests)} flagged", flush=True)
    unflagged = [i for i in range(len(requests)) if i not in flagged][:CHECK] if name.startswith("look") else []
    for i in flagged + unflagged:
        text = deal.generate(requests[i], rewards=safety, max_new_tokens=40, **DEAL_SETTINGS).text
        before = stored[name]["DeAL + Safety"][i]["text"] if "DeAL + Safety" in stored[name] else None
        print(f"  {'flagged' if i in flagged else 'unflagged'} {requests[i]!r}: {verdict(text)} {text[:80]!r}"
              f"{'' if before is None else ' | same as stored: ' + str(before == text)}", flush=True)
