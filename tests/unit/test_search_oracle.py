"""The search against a plain reference implementation of DeAL (the oracle), on random prompts and settings.

The oracle has no KV cache, no batching, no lookahead reuse and no pruning: each step it asks the model for the
top-k next tokens, rolls every candidate out greedily from scratch, scores `log P + λ·R` and commits the best.
The real search must return the same tokens with reuse on/off × pruning on/off, on the transformers backend and on
a second, pure-Python backend.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Sequence
from typing import ClassVar

import pytest
import torch

from deal_core import DeAL
from deal_core.prompts import encode_prompt
from deal_core.rewards import Fluency, Keywords, Reward, RewardSum, as_reward_sum
from deal_core.streaming import cut_at_stop
from tests.unit.table_backend import WORDS, TableBackend, next_logprobs


def reference_deal(next_logp: Callable[[list[int]], Sequence[float]], decode: Callable[[list[int]], str],
                   eos: set[int], prompt: list[int], request: str, reward: Reward | RewardSum, *, top_k: int, lookahead: int,
                   commit: int, weight: float, max_new_tokens: int, stop: Sequence[str] = ()) -> tuple[list[int], str]:
    """DeAL with obvious loops (beam width 1): returns the committed tokens and the finish reason."""
    tokens: list[int] = []
    logp = 0.0
    while True:
        remaining = max_new_tokens - len(tokens)
        scored, rollout = min(lookahead + 1, remaining), min(max(lookahead, commit) + 1, remaining)
        dist = next_logp(prompt + tokens)
        best = None
        for token in heapq.nlargest(top_k, range(len(dist)), key=lambda t: dist[t]):
            branch, logps = [token], [dist[token]]
            while len(branch) < rollout and branch[-1] not in eos:  # greedy lookahead, from scratch
                d = next_logp(prompt + tokens + branch)
                g = max(range(len(d)), key=lambda t: d[t])
                branch.append(g)
                logps.append(d[g])
            ext = branch[:scored]
            ended = next((j for j, t in enumerate(ext) if t in eos), None)
            text, hit = cut_at_stop(decode(tokens + ext[:ended]), stop)
            final = ended is not None or len(tokens) + len(ext) >= max_new_tokens or hit
            counted = len(ext) if ended is None else ended + 1  # Fluency: mean log P of the text (and its EOS)
            mean_logp = (logp + sum(logps[:counted])) / (len(tokens) + counted)
            score = logp + dist[token] + weight * as_reward_sum(reward).evaluate([request], [text], [final],
                                                                                 [mean_logp]).total[0]
            if best is None or score > best[0]:
                best = (score, branch, logps)
        _, branch, logps = best
        n = min(commit, remaining, len(branch))
        ended = next((j for j, t in enumerate(branch[:n]) if t in eos), None)
        tokens += branch[:n][:ended]
        logp += sum(logps[:n])
        if ended is not None:
            return tokens, "eos"
        if cut_at_stop(decode(tokens), stop)[1]:
            return tokens, "stop"
        if len(tokens) >= max_new_tokens:
            return tokens, "length"


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
    encoded = encode_prompt(tiny_lm, prompt)

    def next_logp(ids: list[int]) -> list[float]:
        with torch.inference_mode():
            return torch.log_softmax(tiny_lm.model(torch.tensor([ids])).logits[0, -1].float(), -1).tolist()

    expected, reason = reference_deal(next_logp, tiny_lm.decode, set(tiny_lm.eos_token_ids), encoded.ids,
                                      encoded.request, reward, top_k=case["top_k"], lookahead=case["lookahead"],
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
        assert result.text == cut_at_stop(backend.decode(expected), stop)[0]
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
    encoded = encode_prompt(tiny_lm, prompt)

    def next_logp(ids: list[int]) -> list[float]:
        with torch.inference_mode():
            logits = tiny_lm.model(torch.tensor([ids])).logits[0, -1:].float()
            return torch.log_softmax(processors(torch.tensor([ids]), logits)[0], -1).tolist()

    expected, reason = reference_deal(next_logp, tiny_lm.decode, set(tiny_lm.eos_token_ids), encoded.ids,
                                      encoded.request, reward, top_k=case["top_k"], lookahead=case["lookahead"],
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
