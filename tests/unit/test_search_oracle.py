"""The search against a plain reference implementation of DeAL (the oracle), on random prompts and settings.

The oracle has no KV cache, no batching, no lookahead reuse and no pruning: each step it asks the model for the
top-k next tokens, rolls every candidate out greedily from scratch, scores `log P + λ·R` and commits the best.
The real search must return the same tokens with reuse on/off × pruning on/off, on the transformers backend and on
the pure-Python reference backend, with one beam and with several. The oracle imports nothing from the search:
stop strings, the reward sum and the beam bookkeeping are written out here.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Sequence
from typing import ClassVar

import pytest
import torch

from deal_core import DeAL
from deal_core.rewards import Fluency, Keywords, Reward, RewardSum
from deal_core.backends.table import WORDS, TableBackend, next_logprobs


def _cut(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """The text before the earliest stop string, and whether there was one (written here, not imported)."""
    hits = [i for i in (text.find(s) for s in stop) if i >= 0]
    return (text[:min(hits)], True) if hits else (text, False)


def _reward(reward: Reward | RewardSum, request: str, text: str, final: bool, mean_logp: float) -> float:
    """Σ wᵢ Rᵢ of one text, each reward asked on its own (no RewardSum machinery)."""
    terms = [(1.0, reward)] if isinstance(reward, Reward) else [(t.weight, t.reward) for t in reward.terms]
    return sum(w * r.score([request], [text], [final], [mean_logp])[0] for w, r in terms if w)


def reference_deal(next_logp: Callable[[list[int]], Sequence[float]], decode: Callable[[list[int]], str],
                   eos: set[int], prompt: list[int], request: str, reward: Reward | RewardSum, *, top_k: int,
                   lookahead: int, commit: int, weight: float, max_new_tokens: int, stop: Sequence[str] = (),
                   beam_width: int = 1) -> tuple[list[int], str]:
    """DeAL with obvious loops: returns the committed tokens and the finish reason. Each step every live beam's
    top-k candidates are rolled out greedily from scratch and scored; the `beam_width` best (ties: earlier beam,
    then likelier candidate) commit; an answer that ends leaves the beam; the best ended answer wins."""
    beams: list[tuple[list[int], float]] = [([], 0.0)]
    ended_answers: list[tuple[float, list[int], str]] = []
    while beams:
        pool = []
        for b, (tokens, logp) in enumerate(beams):
            remaining = max_new_tokens - len(tokens)
            scored, rollout = min(lookahead + 1, remaining), min(max(lookahead, commit) + 1, remaining)
            dist = next_logp(prompt + tokens)
            for rank, token in enumerate(heapq.nlargest(top_k, range(len(dist)), key=lambda t: dist[t])):
                branch, logps = [token], [dist[token]]
                while len(branch) < rollout and branch[-1] not in eos:  # greedy lookahead, from scratch
                    d = next_logp(prompt + tokens + branch)
                    g = max(range(len(d)), key=lambda t: d[t])
                    branch.append(g)
                    logps.append(d[g])
                ext = branch[:scored]
                end = next((j for j, t in enumerate(ext) if t in eos), None)
                text, hit = _cut(decode(tokens + ext[:end]), stop)
                final = end is not None or len(tokens) + len(ext) >= max_new_tokens or hit
                counted = len(ext) if end is None else end + 1  # Fluency: mean log P of the text (and its EOS)
                mean_logp = (logp + sum(logps[:counted])) / (len(tokens) + counted)
                score = logp + dist[token] + weight * _reward(reward, request, text, final, mean_logp)
                pool.append((score, b, rank, branch, logps))
        winners = sorted(pool, key=lambda c: (-c[0], c[1], c[2]))[:beam_width]
        n = min(commit, max_new_tokens - len(beams[winners[0][1]][0]))
        survivors = []
        for score, b, _, branch, logps in winners:
            tokens, logp = beams[b]
            m = min(n, len(branch))
            end = next((j for j, t in enumerate(branch[:m]) if t in eos), None)
            tokens, logp = tokens + branch[:m][:end], logp + sum(logps[:m])
            reason = "eos" if end is not None else "stop" if _cut(decode(tokens), stop)[1] else \
                "length" if len(tokens) >= max_new_tokens else None
            if reason:
                ended_answers.append((score, tokens, reason))
            else:
                survivors.append((tokens, logp))
        beams = survivors
    _, tokens, reason = max(ended_answers, key=lambda a: a[0])
    return tokens, reason


class VowelShareExpensive(Reward):
    """Share of vowels among letters, declared expensive so the search scores it in its second stage."""

    cost: ClassVar[str] = "expensive"

    def _score(self, prompts: Sequence[str], texts: Sequence[str], is_final: Sequence[bool]) -> list[float]:
        letters = [[c for c in t.lower() if c.isalpha()] for t in texts]
        return [sum(c in "aeiou" for c in ls) / len(ls) if ls else 0.0 for ls in letters]


def random_case(seed: int) -> dict:
    rng = random.Random(seed)
    lookahead = rng.randint(0, 4)
    return dict(top_k=rng.randint(1, 8), lookahead=lookahead, commit=rng.randint(1, lookahead + 1),
                reward_weight=rng.choice([0.0, 0.5, 2.0, 5.0, 20.0]), max_new_tokens=rng.randint(3, 12))


COMBOS = [dict(reuse=r, prune=p) for r in (True, False) for p in (True, False)]


@pytest.mark.parametrize("seed", range(8))
def test_transformers_backend_matches_the_oracle(tiny_lm, seed):
    rng = random.Random(100 + seed)
    prompt = " ".join(rng.choice(["dog", "cat", "park", "sun", "river", "play", "the", "a"]) for _ in range(4))
    reward = Keywords(keywords=rng.sample(["dog", "cat", "park", "sun", "tree", "ball"], 2))
    case = random_case(seed)
    # none, multi-token, multi-byte and common ones (most cases end on a stop string)
    stop = [(), (" the",), ("é", "ing"), ("e",), ("a",), ("s", "t"), ("o",), ("er", "ed")][seed]
    if seed % 2:  # an expensive reward takes the staged path (scored only where the cheap ones leave room)
        reward = reward + VowelShareExpensive()
    if seed % 4 == 2:  # a reward that reads the search's own log-probabilities
        reward = reward + Fluency() * 2.0
    ids = tiny_lm.encode_chat([{"role": "user", "content": prompt}])  # the backend's verb, not the decoder's

    def next_logp(ids: list[int]) -> list[float]:
        with torch.inference_mode():
            return torch.log_softmax(tiny_lm.model(torch.tensor([ids])).logits[0, -1].float(), -1).tolist()

    expected, reason = reference_deal(next_logp, tiny_lm.decode, set(tiny_lm.eos_token_ids), ids,
                                      prompt, reward, top_k=case["top_k"], lookahead=case["lookahead"],
                                      commit=case["commit"], weight=case["reward_weight"],
                                      max_new_tokens=case["max_new_tokens"], stop=stop)
    deal = DeAL(tiny_lm, rewards=reward)
    for combo in COMBOS:
        result = deal.generate(prompt, stop=stop, **case, **combo)
        assert (result.token_ids, result.finish_reason) == (expected, reason), (case, combo)


@pytest.mark.parametrize("seed", range(40))
def test_a_pure_python_backend_runs_the_full_search_and_matches_the_oracle(seed):
    backend = TableBackend()
    rng = random.Random(seed)
    prompt = " ".join(rng.choice(WORDS[2:]) for _ in range(3))
    reward = Keywords(keywords=rng.sample(["dog", "park", "ball", "sky", "tree"], 2))
    if seed % 5 == 1:
        reward = reward + Fluency() * rng.choice([0.5, 3.0])
    case = random_case(seed)
    stop = [("park",), ("sky .",), ()][seed % 3]
    ids = backend.encode_text(prompt)
    expected, reason = reference_deal(next_logprobs, backend.decode, {1}, ids, prompt, reward,
                                      top_k=case["top_k"], lookahead=case["lookahead"], commit=case["commit"],
                                      weight=case["reward_weight"], max_new_tokens=case["max_new_tokens"],
                                      stop=stop)
    deal = DeAL(backend, rewards=reward, use_chat_template=False)
    for combo in COMBOS:
        result = deal.generate(prompt, stop=stop, **case, **combo)
        assert (result.token_ids, result.finish_reason) == (expected, reason), (case, combo, stop)
        assert result.text == _cut(backend.decode(expected), stop)[0]
    assert backend.forwards > 0


def test_pure_python_backend_batches_streams_and_decodes_greedy():
    backend = TableBackend()
    deal = DeAL(backend, rewards=Keywords(keywords=["dog"]), max_new_tokens=8, top_k=3, lookahead=2)
    prompts = ["the big dog", "a red sun", "kid with ball"]
    alone = [deal.generate(p).token_ids for p in prompts]
    assert [r.token_ids for r in deal.generate_batch(prompts)] == alone  # left padding is invisible
    stream = deal.stream(prompts[0])
    assert "".join(stream) == stream.result.text
    greedy = deal.greedy("the big dog")
    assert greedy.token_ids == deal.generate("the big dog", top_k=1, reward_weight=0.0).token_ids


@pytest.mark.parametrize("seed", range(6))
def test_repetition_penalties_match_the_oracle_over_processed_distributions(tiny_lm, seed):
    """repetition_penalty / no_repeat_ngram_size are transformers' logits processors over prompt + response so far:
    the search under them equals the reference DeAL whose model applies them to the full sequence."""
    from transformers import LogitsProcessorList, NoRepeatNGramLogitsProcessor, RepetitionPenaltyLogitsProcessor

    rng = random.Random(300 + seed)
    prompt = " ".join(rng.choice(["dog", "cat", "park", "sun", "the", "a"]) for _ in range(4))
    reward = Keywords(keywords=rng.sample(["dog", "cat", "park", "sun", "tree"], 2))
    case = random_case(seed)
    penalty, ngram = [(1.3, 0), (1.0, 2), (2.0, 3), (1.2, 1), (0.8, 2), (1.5, 2)][seed]
    processors = LogitsProcessorList(([RepetitionPenaltyLogitsProcessor(penalty)] if penalty != 1.0 else [])
                                     + ([NoRepeatNGramLogitsProcessor(ngram)] if ngram else []))
    ids = tiny_lm.encode_chat([{"role": "user", "content": prompt}])  # the backend's verb, not the decoder's

    def next_logp(ids: list[int]) -> list[float]:
        with torch.inference_mode():
            logits = tiny_lm.model(torch.tensor([ids])).logits[0, -1:].float()
            return torch.log_softmax(processors(torch.tensor([ids]), logits)[0], -1).tolist()

    expected, reason = reference_deal(next_logp, tiny_lm.decode, set(tiny_lm.eos_token_ids), ids,
                                      prompt, reward, top_k=case["top_k"], lookahead=case["lookahead"],
                                      commit=case["commit"], weight=case["reward_weight"],
                                      max_new_tokens=case["max_new_tokens"])
    deal = DeAL(tiny_lm, rewards=reward)
    for combo in COMBOS:
        result = deal.generate(prompt, repetition_penalty=penalty, no_repeat_ngram_size=ngram, **case, **combo)
        assert (result.token_ids, result.finish_reason) == (expected, reason), (case, combo)
    greedy = deal.greedy(prompt, repetition_penalty=penalty, no_repeat_ngram_size=ngram, max_new_tokens=10)
    assert deal.generate(prompt, repetition_penalty=penalty, no_repeat_ngram_size=ngram, max_new_tokens=10, top_k=1,
                         reward_weight=0.0).token_ids == greedy.token_ids  # the same rule as transformers' generate


def test_batched_prompts_equal_each_prompt_alone_on_random_settings():
    """Prompts of different lengths in one batch (left-padded rows, survivors cut from a shared cache) return what
    each returns alone."""
    backend = TableBackend()
    for seed in range(12):
        rng = random.Random(500 + seed)
        prompts = [" ".join(rng.choice(WORDS[2:]) for _ in range(rng.randint(2, 5))) for _ in range(4)]
        case = {**random_case(seed), "lookahead": rng.randint(2, 5), "commit": 1, "max_new_tokens": 14}
        deal = DeAL(backend, rewards=Keywords(keywords=rng.sample(["dog", "park", "ball", "sky"], 2)),
                    use_chat_template=False)
        alone = [deal.generate(p, **case).token_ids for p in prompts]
        assert [r.token_ids for r in deal.generate_batch(prompts, **case)] == alone, case


@pytest.mark.parametrize("seed", range(24))
def test_beams_match_the_oracle(seed):
    """beam_width 2-4 on the table backend: every beam's candidates pooled, the best survive, ended answers kept."""
    backend = TableBackend()
    rng = random.Random(1000 + seed)
    prompt = " ".join(rng.choice(WORDS[2:]) for _ in range(3))
    reward = Keywords(keywords=rng.sample(["dog", "park", "ball", "sky", "tree"], 2))
    if seed % 4 == 1:
        reward = reward + Fluency() * 2.0
    case = {**random_case(seed), "beam_width": rng.randint(2, 4)}
    stop = [("park",), ()][seed % 2]
    ids = backend.encode_text(prompt)
    expected, reason = reference_deal(next_logprobs, backend.decode, {1}, ids, prompt, reward,
                                      top_k=case["top_k"], lookahead=case["lookahead"], commit=case["commit"],
                                      weight=case["reward_weight"], max_new_tokens=case["max_new_tokens"],
                                      stop=stop, beam_width=case["beam_width"])
    deal = DeAL(backend, rewards=reward, use_chat_template=False)
    for combo in COMBOS:
        result = deal.generate(prompt, stop=stop, **case, **combo)
        assert (result.token_ids, result.finish_reason) == (expected, reason), (case, combo, stop)
