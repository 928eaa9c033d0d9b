"""The two engines side by side on the embedded model: llama.cpp (the 4-bit GGUF, natively) against transformers
(the same file de-quantized to fp32), greedy and DeAL, every mode interleaved on the same CommonGen prompts in one
process; and each engine's cold start and peak memory in a fresh interpreter.

    python -m deal_core.bench.engines --split hard --limit 10 --max-new-tokens 48 [--json OUT]
    python -m deal_core.bench.engines --plain path/to/base-model.gguf   (another model: plain completions)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from deal_core.bench import quality
from deal_core.bench.data import load_commongen
from deal_core.decoder import DeAL
from deal_core.model import embedded_gguf_path, load_model
from deal_core.prompts import encode_prompt
from deal_core.rewards import Keywords

MODES: dict[str, dict[str, Any] | None] = {
    "greedy": None,
    "DeAL k10 l8 λ3 (default)": dict(top_k=10, lookahead=8, reward_weight=3.0),
    "DeAL k5 l5 λ1 (paper)": dict(top_k=5, lookahead=5, reward_weight=1.0),
}
ENGINES = ("transformers", "llamacpp")


def cold_start(engine: str) -> dict[str, float]:
    """A fresh interpreter: import, load the embedded model on `engine`, decode one token; its peak RSS.

    The peak is the interpreter's own high-water mark (`VmHWM`): `ru_maxrss` would carry over the RSS of this
    process, which forked it (Linux keeps it across exec; it read 1457 MB for both engines here)."""
    code = ("import time; t = time.perf_counter(); from deal_core import DeAL, load_model; "
            f"DeAL(load_model(engine={engine!r}), max_new_tokens=1).greedy('Hi'); "
            "hwm = next(line for line in open('/proc/self/status') if line.startswith('VmHWM:')); "
            "print(time.perf_counter() - t, int(hwm.split()[1]) / 1024)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds, rss = map(float, out.stdout.split()[-2:])
    return {"cold_start_s": seconds, "peak_rss_mb": rss}


def own_greedy(llama: Any, ids: list[int], eos: frozenset[int], max_new_tokens: int) -> int:
    """llama-cpp-python's own greedy loop (`Llama.generate`): tokens emitted."""
    n = 0
    for token in llama.generate(ids, top_k=1, temp=0.0, repeat_penalty=1.0, reset=True):
        if token in eos or n == max_new_tokens:
            break
        n += 1
    return n


def run(split: str = "hard", limit: int = 10, max_new_tokens: int = 48) -> dict[str, Any]:
    from llama_cpp import Llama

    sets = load_commongen(None, limit, split)
    decoders = {e: DeAL(load_model(engine=e), max_new_tokens=max_new_tokens) for e in ENGINES}
    threads = len(os.sched_getaffinity(0))  # as our backend; llama-cpp-python's own default is half the CPUs
    llama = Llama(model_path=str(embedded_gguf_path()), n_ctx=1024, n_threads=threads, n_threads_batch=threads,
                  verbose=False)
    eos = decoders["llamacpp"].lm.eos_token_ids
    for deal in decoders.values():  # warm-up: first-call allocations are not the cost of a search
        deal.generate(sets[0].prompt, max_new_tokens=4)
    times: dict[str, list[float]] = {}
    rows: dict[str, list[dict[str, Any]]] = {}
    for i, s in enumerate(sets):
        reward = Keywords(keywords=s.concepts)
        ids = encode_prompt(decoders["llamacpp"].lm, s.prompt).ids
        start = time.perf_counter()
        n = own_greedy(llama, ids, eos, max_new_tokens)
        own = (time.perf_counter() - start) / max(n, 1)
        times.setdefault("greedy / llama-cpp-python Llama.generate", []).append(own)
        for mode, settings in MODES.items():  # interleaved: drift in machine speed hits every mode alike
            for engine, deal in decoders.items():
                start = time.perf_counter()
                result = deal.greedy(s.prompt) if settings is None else deal.generate(s.prompt, rewards=reward,
                                                                                      **settings)
                key = f"{mode} / {engine}"
                times.setdefault(key, []).append((time.perf_counter() - start) / max(len(result.token_ids), 1))
                rows.setdefault(key, []).append({"tokens": result.token_ids, "text": result.text,
                                                 **quality.judge(s.concepts, result.text)})
        print(f"{i + 1}/{len(sets)}", file=sys.stderr, flush=True)
    report = {"split": split, "sets": len(sets), "max_new_tokens": max_new_tokens, "modes": {}}
    for key, values in times.items():
        ms = 1000 * statistics.median(values)
        entry = {"ms_per_token_median": ms, "ms_per_token_mean": 1000 * statistics.fmean(values)}
        if key in rows:
            entry["all_concepts"] = statistics.fmean(r["all_concepts"] for r in rows[key])
        report["modes"][key] = entry
    for mode in MODES:
        t, ll = (report["modes"][f"{mode} / {e}"]["ms_per_token_median"] for e in ENGINES)
        report["modes"][f"{mode} / llamacpp"]["speedup_vs_transformers"] = t / ll
        pairs = zip(rows[f"{mode} / transformers"], rows[f"{mode} / llamacpp"])
        same = sum(a["tokens"] == b["tokens"] for a, b in pairs)
        report["modes"][f"{mode} / llamacpp"]["same_tokens_as_transformers"] = same / len(sets)
    report["cold"] = {e: cold_start(e) for e in ENGINES}
    return report


def plain(path: str, split: str = "hard", limit: int = 10, max_new_tokens: int = 48) -> dict[str, Any]:
    """Another GGUF model on llama.cpp, plain completions (no chat template: a base model), greedy against DeAL
    default and paper settings, interleaved on the same CommonGen sets: ms/token and coverage."""
    sets = load_commongen(None, limit, split)
    deal = DeAL(load_model(path, engine="llamacpp"), use_chat_template=False, max_new_tokens=max_new_tokens)
    deal.generate(sets[0].prompt, max_new_tokens=4)  # warm-up
    times: dict[str, list[float]] = {}
    covered: dict[str, list[float]] = {}
    for s in sets:
        prompt = f"Here is one sentence that uses the words {', '.join(s.concepts)}:"
        for mode, settings in MODES.items():
            start = time.perf_counter()
            result = deal.greedy(prompt) if settings is None else deal.generate(
                prompt, rewards=Keywords(keywords=s.concepts), **settings)
            times.setdefault(mode, []).append((time.perf_counter() - start) / max(len(result.token_ids), 1))
            covered.setdefault(mode, []).append(quality.judge(s.concepts, result.text)["all_concepts"])
    return {"model": path, "split": split, "sets": len(sets), "max_new_tokens": max_new_tokens,
            "modes": {m: {"ms_per_token_median": 1000 * statistics.median(times[m]),
                          "all_concepts": statistics.fmean(covered[m])} for m in MODES}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="hard")
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--json")
    parser.add_argument("--plain", metavar="GGUF", help="instead: this GGUF model on llama.cpp, plain completions")
    args = parser.parse_args()
    if args.plain:
        report = plain(args.plain, args.split, args.limit, args.max_new_tokens)
        print("| mode | ms/token (median) | all concepts |\n|---|---|---|")
        for mode, e in report["modes"].items():
            print(f"| {mode} | {e['ms_per_token_median']:.1f} | {e['all_concepts']:.0%} |")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(report, f, indent=1)
        return
    report = run(args.split, args.limit, args.max_new_tokens)
    print("| mode / engine | ms/token (median) | × transformers | all concepts |\n|---|---|---|---|")
    for key, e in report["modes"].items():
        speed = f"{e['speedup_vs_transformers']:.2f}×" if "speedup_vs_transformers" in e else ""
        concepts = f"{e['all_concepts']:.0%}" if "all_concepts" in e else ""
        print(f"| {key} | {e['ms_per_token_median']:.1f} | {speed} | {concepts} |")
    for engine, c in report["cold"].items():
        print(f"{engine}: cold start {c['cold_start_s']:.2f} s, peak RSS {c['peak_rss_mb']:.0f} MB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
