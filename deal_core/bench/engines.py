"""The engines side by side on the embedded model, against llama-cpp-python's own greedy loop on the same GGUF file:
our greedy and DeAL on llama.cpp (the 4-bit GGUF, natively) and on transformers (the same file de-quantized to
fp32), every mode interleaved on the same CommonGen prompts in one process, each row's ms/token × the reference row
(llama-cpp-python's `Llama.generate`, greedy, on the same prompt tokens) with hard and clean coverage beside it;
and each engine's cold start and peak memory in a fresh interpreter.

    deal bench engines --split hard --limit 30 --max-new-tokens 48 [--json OUT]
    python -m deal_core.bench.engines --limit 30 [--engines llamacpp] [--json OUT]
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
from collections.abc import Sequence
from typing import Any

from deal_core.bench import quality
from deal_core.bench.data import load_commongen
from deal_core.config import settings_of
from deal_core.decoder import DeAL
from deal_core.errors import ConfigError
from deal_core.model import embedded_gguf_path, load_model
from deal_core.prompts import encode_prompt
from deal_core.rewards import Keywords

MODES: dict[str, dict[str, Any] | None] = {
    "greedy": None,
    "DeAL k5 l5 λ1 (paper)": settings_of("paper"),
    "DeAL k10 l8 λ3 (default)": settings_of("default"),
}
ENGINES = ("llamacpp", "transformers")
REFERENCE = "llama-cpp-python's own greedy (Llama.generate)"
CHAT = "llama-cpp-python create_chat_completion, greedy"


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


def own_greedy(llama: Any, ids: list[int], eos: frozenset[int], max_new_tokens: int) -> list[int]:
    """llama-cpp-python's own greedy loop (`Llama.generate`): the tokens it emits."""
    tokens: list[int] = []
    for token in llama.generate(ids, top_k=1, temp=0.0, repeat_penalty=1.0, reset=True):
        if token in eos or len(tokens) == max_new_tokens:
            break
        tokens.append(token)
    return tokens


def own_chat(llama: Any, prompt: str, max_new_tokens: int) -> tuple[str, int]:
    """llama-cpp-python's `create_chat_completion` (its own template, loop and detokenizer), greedy: text, tokens."""
    out = llama.create_chat_completion([{"role": "user", "content": prompt}], max_tokens=max_new_tokens,
                                       temperature=0.0, top_k=1, repeat_penalty=1.0)
    return out["choices"][0]["message"]["content"] or "", out["usage"]["completion_tokens"]


def _reference(llama: Any, lm: Any, ids: list[int], max_new_tokens: int) -> tuple[str, int]:
    tokens = own_greedy(llama, ids, lm.eos_token_ids, max_new_tokens)
    return lm.decode(tokens), len(tokens)


def _ours(deal: DeAL, prompt: str, concepts: list[str], settings: dict[str, Any] | None) -> tuple[str, int]:
    result = deal.greedy(prompt) if settings is None else deal.generate(prompt, rewards=Keywords(keywords=concepts),
                                                                        **settings)
    return result.text, len(result.token_ids)


def _timed(key: str, times: dict, rows: dict, concepts: list[str], call: Any, *args: Any) -> None:
    """Run `call(*args)` (→ text, tokens), record its ms/token under `key` and its coverage."""
    start = time.perf_counter()
    text, tokens = call(*args)
    times.setdefault(key, []).append((time.perf_counter() - start) / max(tokens, 1))
    rows.setdefault(key, []).append({"text": text, **quality.judge(concepts, text)})


def run(model: str | None = None, data: str | None = None, limit: int = 30, max_new_tokens: int = 48,
        json_out: str | None = None, split: str = "hard", engines: Sequence[str] = ENGINES, cold: bool = True,
        **_: Any) -> dict[str, Any]:
    """Every mode × engine and the reference rows, interleaved per prompt; printed as a table (and `json_out`)."""
    if model is not None:
        raise ConfigError("bench engines runs the embedded model on each engine; for another GGUF file use "
                          "`python -m deal_core.bench.engines --plain FILE`")
    from llama_cpp import Llama

    sets = load_commongen(data, limit, split)
    decoders = {e: DeAL(load_model(engine=e), max_new_tokens=max_new_tokens) for e in engines}
    threads = len(os.sched_getaffinity(0))  # as our backend; llama-cpp-python's own default is half the CPUs
    llama = Llama(model_path=str(embedded_gguf_path()), n_ctx=1024, n_threads=threads, n_threads_batch=threads,
                  verbose=False)
    lm = load_model(engine="llamacpp")
    for deal in decoders.values():  # warm-up: first-call allocations are not the cost of a search
        deal.generate(sets[0].prompt, max_new_tokens=4)
    own_greedy(llama, encode_prompt(lm, sets[0].prompt).ids, lm.eos_token_ids, 4)
    times: dict[str, list[float]] = {}
    rows: dict[str, list[dict[str, Any]]] = {}
    for i, s in enumerate(sets):
        ids = encode_prompt(lm, s.prompt).ids
        _timed(REFERENCE, times, rows, s.concepts, _reference, llama, lm, ids, max_new_tokens)
        _timed(CHAT, times, rows, s.concepts, own_chat, llama, s.prompt, max_new_tokens)
        for mode, settings in MODES.items():  # interleaved: drift in machine speed hits every mode alike
            for engine, deal in decoders.items():
                _timed(f"{mode} / {engine}", times, rows, s.concepts, _ours, deal, s.prompt, s.concepts, settings)
        print(f"{i + 1}/{len(sets)}", file=sys.stderr, flush=True)
    report = summarize(times, rows, split, len(sets), max_new_tokens)
    if cold:
        report["cold"] = {e: cold_start(e) for e in engines}
    print_report(report)
    if json_out:
        with open(json_out, "w") as f:
            json.dump(report, f, indent=1)
    return report


def summarize(times: dict[str, list[float]], rows: dict[str, list[dict[str, Any]]], split: str, sets: int,
              max_new_tokens: int) -> dict[str, Any]:
    """Median and mean ms/token per row, × the reference row's median, hard and clean coverage."""
    base = statistics.median(times[REFERENCE])
    report: dict[str, Any] = {"split": split, "sets": sets, "max_new_tokens": max_new_tokens, "reference": REFERENCE,
                              "modes": {}}
    for key, values in times.items():
        report["modes"][key] = {
            "ms_per_token_median": 1000 * statistics.median(values),
            "ms_per_token_mean": 1000 * statistics.fmean(values),
            "x_reference": statistics.median(values) / base,
            "all_concepts": statistics.fmean(r["all_concepts"] for r in rows[key]),
            "clean_all_concepts": statistics.fmean(r["clean_all_concepts"] for r in rows[key]),
        }
    return report


def print_report(report: dict[str, Any]) -> None:
    print(f"{report['sets']} CommonGen sets ({report['split']}), {report['max_new_tokens']} new tokens, one process, "
          "every row interleaved per prompt")
    print("| mode / engine | ms/token (median) | × llama-cpp-python's own greedy | hard / clean coverage |\n"
          "|---|---|---|---|")
    for key, e in report["modes"].items():
        print(f"| {key} | {e['ms_per_token_median']:.1f} | {e['x_reference']:.2f}× | "
              f"{e['all_concepts']:.2f} / {e['clean_all_concepts']:.2f} |")
    for engine, c in report.get("cold", {}).items():
        print(f"{engine}: cold start {c['cold_start_s']:.2f} s, peak RSS {c['peak_rss_mb']:.0f} MB")


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
    parser.add_argument("--limit", type=int, default=30)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated: llamacpp,transformers")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold-start and peak-memory runs")
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
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if not engines or set(engines) - set(ENGINES):
        parser.error(f"--engines takes a comma-separated subset of {','.join(ENGINES)}")
    run(None, None, args.limit, args.max_new_tokens, args.json, args.split, engines, not args.no_cold)


if __name__ == "__main__":
    main()
