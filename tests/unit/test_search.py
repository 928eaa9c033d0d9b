"""The search on a tiny random-weight Llama: exactness, invariants, stop strings, streaming, errors."""

import math
from typing import ClassVar

import pytest
import torch

from deal_core import ContextLengthError, GenerationTimeout, PromptError, RewardError
from deal_core.rewards import Reward

PROMPT = "Hello there"
SETTINGS = [
    dict(top_k=5, lookahead=5, commit=1, beam_width=1, reward_weight=1.0),
    dict(top_k=5, lookahead=5, commit=1, beam_width=1, reward_weight=5.0),
    dict(top_k=4, lookahead=3, commit=4, beam_width=1, reward_weight=3.0),
    dict(top_k=3, lookahead=4, commit=2, beam_width=2, reward_weight=2.0),
    dict(top_k=6, lookahead=2, commit=1, beam_width=3, reward_weight=10.0),
    dict(top_k=5, lookahead=0, commit=1, beam_width=1, reward_weight=5.0),
]


def reference_greedy(lm, prompt_ids, max_new_tokens):
    out = lm.model.generate(torch.tensor([prompt_ids]), max_new_tokens=max_new_tokens, do_sample=False,
                            pad_token_id=lm.pad_token_id, top_k=None, top_p=None, temperature=None)
    return out[0, len(prompt_ids):].tolist()


def test_top1_without_reward_is_token_for_token_greedy(tiny, vowels):
    from deal_core.prompts import encode_prompt

    ids = encode_prompt(tiny.lm, PROMPT).ids
    expected = reference_greedy(tiny.lm, ids, 24)
    result = tiny.generate(PROMPT, rewards=vowels, top_k=1, reward_weight=0.0)
    assert result.token_ids == expected[: len(result.token_ids)]
    assert len(result.token_ids) == 24


def test_search_is_deterministic(tiny, vowels):
    a = tiny.generate(PROMPT, rewards=vowels, reward_weight=3.0)
    b = tiny.generate(PROMPT, rewards=vowels, reward_weight=3.0)
    assert a.token_ids == b.token_ids and a.logprob == b.logprob


def test_reward_changes_the_output_towards_higher_reward(tiny, vowels):
    plain = tiny.generate(PROMPT, rewards=vowels, reward_weight=0.0)
    aligned = tiny.generate(PROMPT, rewards=vowels, reward_weight=20.0)
    assert aligned.token_ids != plain.token_ids
    assert aligned.rewards["vowelshare"] > plain.rewards["vowelshare"]


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: "k{top_k}-l{lookahead}-c{commit}-b{beam_width}".format(**s))
def test_pruning_and_reuse_do_not_change_the_result(tiny, vowels, settings):
    fast = tiny.generate(PROMPT, rewards=vowels, **settings)
    exhaustive = tiny.generate(PROMPT, rewards=vowels, prune=False, **settings)
    assert fast.token_ids == exhaustive.token_ids
    assert fast.logprob == pytest.approx(exhaustive.logprob)
    assert fast.stats.forward_passes <= exhaustive.stats.forward_passes


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: "k{top_k}-l{lookahead}-c{commit}-b{beam_width}".format(**s))
def test_budget_and_commit_invariants(tiny, vowels, settings):
    for budget in (1, 7, 13):
        r = tiny.generate(PROMPT, rewards=vowels, max_new_tokens=budget, **settings)
        assert 1 <= len(r.token_ids) <= budget
        assert r.finish_reason in {"eos", "length", "stop"}
        if r.finish_reason == "length":
            assert len(r.token_ids) == budget
    r = tiny.generate(PROMPT, rewards=vowels, max_new_tokens=24, **settings)
    assert r.stats.steps == math.ceil(len(r.token_ids) / settings["commit"])


def test_reported_logprob_matches_the_model(tiny, vowels):
    from deal_core.prompts import encode_prompt

    r = tiny.generate(PROMPT, rewards=vowels, reward_weight=5.0, max_new_tokens=10)
    ids = encode_prompt(tiny.lm, PROMPT).ids
    full = torch.tensor([ids + r.token_ids])
    with torch.no_grad():
        logp = torch.log_softmax(tiny.lm.model(full).logits[0].float(), -1)
    expected = sum(float(logp[len(ids) - 1 + i, t]) for i, t in enumerate(r.token_ids))
    assert r.logprob == pytest.approx(expected, abs=1e-3)


def test_batched_prompts_with_left_padding_equal_single_calls(tiny, vowels):
    prompts = [PROMPT, "Write a long poem about the sea and the sky please, with rhymes", "x"]
    batch = tiny.generate_batch(prompts, rewards=vowels, top_k=4, lookahead=3, reward_weight=3.0)
    for prompt, result in zip(prompts, batch):
        alone = tiny.generate(prompt, rewards=vowels, top_k=4, lookahead=3, reward_weight=3.0)
        assert result.token_ids == alone.token_ids
        assert result.rewards == pytest.approx(alone.rewards)


def test_sampled_proposals_are_seeded(tiny, vowels):
    a = tiny.generate(PROMPT, rewards=vowels, sample=True, seed=3, temperature=1.5, top_p=0.9)
    b = tiny.generate(PROMPT, rewards=vowels, sample=True, seed=3, temperature=1.5, top_p=0.9)
    c = tiny.generate(PROMPT, rewards=vowels, sample=True, seed=4, temperature=1.5, top_p=0.9)
    assert a.token_ids == b.token_ids
    assert c.token_ids != a.token_ids


def test_stop_string_cuts_before_the_first_occurrence(tiny):
    full = tiny.generate(PROMPT, top_k=1).text
    stop = full[len(full) // 2: len(full) // 2 + 3]
    assert stop.strip(), full
    r = tiny.generate(PROMPT, top_k=1, stop=[stop, "never-appears"])
    assert r.finish_reason == "stop"
    assert stop not in r.text
    assert r.text == full[: full.index(stop)]


def test_stream_deltas_join_to_the_final_text(tiny, vowels):
    full = tiny.generate(PROMPT, rewards=vowels, reward_weight=3.0).text
    stream = tiny.stream(PROMPT, rewards=vowels, reward_weight=3.0)
    deltas = list(stream)
    assert len(deltas) > 3
    assert "".join(deltas) == full == stream.result.text


def test_stream_never_shows_a_stop_string(tiny):
    full = tiny.generate(PROMPT, top_k=1).text
    stop = full[len(full) // 3: len(full) // 3 + 4]
    stream = tiny.stream(PROMPT, top_k=1, stop=[stop])
    shown = ""
    for delta in stream:
        shown += delta
        assert stop not in shown
    assert shown == full[: full.index(stop)] == stream.result.text


def test_abandoned_stream_releases_the_model(tiny, vowels):
    stream = tiny.stream(PROMPT, rewards=vowels)
    next(stream)
    stream.close()
    assert tiny.lm.lock.acquire(blocking=False)
    tiny.lm.lock.release()
    assert tiny.generate(PROMPT, rewards=vowels).text


def test_trace_explains_each_choice(tiny, vowels):
    r = tiny.generate(PROMPT, rewards=vowels, reward_weight=2.0, top_k=5, trace=True, max_new_tokens=6)
    assert len(r.trace) == r.stats.steps == 6
    decode = tiny.lm.tokenizer.decode
    for step, token in zip(r.trace, r.token_ids):
        statuses = [c.status for c in step.candidates]
        assert statuses.count("won") == 1 and len(statuses) == 5
        winner = step.candidates[statuses.index("won")]
        assert winner.token == decode([token])
        assert set(winner.rewards) == {"vowelshare"}
        scored = [c for c in step.candidates if c.score is not None]
        assert winner.score == max(c.score for c in scored)


class Veto(Reward):
    kind: ClassVar[str] = ""

    @property
    def can_veto(self):
        return True

    def _score(self, prompts, texts, is_final):
        return [-math.inf] * len(texts)


def test_all_candidates_vetoed_falls_back_with_a_flag(tiny):
    r = tiny.generate(PROMPT, rewards=Veto(), max_new_tokens=5)
    plain = tiny.generate(PROMPT, top_k=1, max_new_tokens=5)
    assert r.constraint_fallback
    assert r.token_ids == plain.token_ids


class Raises(Reward):
    kind: ClassVar[str] = ""

    def _score(self, prompts, texts, is_final):
        raise ZeroDivisionError("oops")


class NaNReward(Reward):
    kind: ClassVar[str] = ""

    def _score(self, prompts, texts, is_final):
        return [float("nan")] * len(texts)


class WrongCount(Reward):
    kind: ClassVar[str] = ""

    def _score(self, prompts, texts, is_final):
        return [0.5]


@pytest.mark.parametrize(("reward", "needle"), [(Raises(), "ZeroDivisionError"), (NaNReward(), "nan"),
                                                (WrongCount(), "returned 1 scores")])
def test_bad_rewards_raise_typed_errors(tiny, reward, needle):
    with pytest.raises(RewardError, match=needle):
        tiny.generate(PROMPT, rewards=reward)
    assert tiny.generate(PROMPT).text  # the model is usable afterwards


@pytest.mark.parametrize("prompt", ["", "   \n", [], [{"role": "user", "content": " "}]])
def test_empty_prompts_are_rejected(tiny, prompt):
    with pytest.raises(PromptError, match="empty|no message"):
        tiny.generate(prompt)


def test_prompt_longer_than_context_is_rejected_with_numbers(tiny):
    with pytest.raises(ContextLengthError, match=r"context window is 256 tokens") as info:
        tiny.generate("word " * 300)
    assert info.value.prompt_tokens > 256
    with pytest.raises(ContextLengthError, match="lower max_new_tokens"):
        tiny.generate("word " * 200, max_new_tokens=100)


def test_timeout_raises_cleanly(tiny, vowels):
    with pytest.raises(GenerationTimeout, match="timeout_s"):
        tiny.generate(PROMPT, rewards=vowels, timeout_s=1e-6, prune=False)


def test_alignment_prompt_becomes_a_system_message(tiny):
    from deal_core.prompts import encode_prompt

    plain = tiny.lm.tokenizer.decode(encode_prompt(tiny.lm, PROMPT).ids)
    aligned = tiny.lm.tokenizer.decode(encode_prompt(tiny.lm, PROMPT, "Be kind.").ids)
    assert "Be kind." in aligned and "Be kind." not in plain
    assert aligned.index("Be kind.") < aligned.index(PROMPT)


def test_assistant_prefill_is_continued(tiny):
    messages = [{"role": "user", "content": PROMPT}, {"role": "assistant", "content": "Sure, here is"}]
    from deal_core.prompts import encode_prompt

    text = tiny.lm.tokenizer.decode(encode_prompt(tiny.lm, messages).ids)
    assert text.rstrip().endswith("Sure, here is")
    assert tiny.generate(messages, max_new_tokens=3).token_ids


def test_expensive_rewards_run_only_where_cheap_ones_leave_a_chance(tiny, vowels):
    from deal_core.rewards import FunctionReward

    seen = []

    def word_lengths(prompts, texts):
        seen.extend(texts)
        return [min(1.0, sum(len(w) for w in t.split()) / (10 * max(len(t.split()), 1))) for t in texts]

    expensive = FunctionReward(word_lengths, bounds=(0, 1), expensive=True)
    combo = 2.0 * vowels + 0.5 * expensive
    for settings in SETTINGS[:4]:
        seen.clear()
        staged = tiny.generate(PROMPT, rewards=combo, **settings)
        staged_calls = len(seen)
        seen.clear()
        exhaustive = tiny.generate(PROMPT, rewards=combo, prune=False, **settings)
        assert staged.token_ids == exhaustive.token_ids
        assert staged.rewards == pytest.approx(exhaustive.rewards)
        assert staged_calls < len(seen)


def test_kv_extend_equals_encoding_each_sequence_whole(tiny_lm):
    """A shared prefix encoded once, then blocks of different lengths appended, gives each row's own logits."""
    prefix, blocks = [5, 9, 14, 3], [[7], [8, 21, 4, 30, 2], [11, 12]]
    with tiny_lm.session():
        (shared,), _ = tiny_lm.prefill([prefix])
        seqs = tiny_lm.fork([shared] * len(blocks))
        extended = tiny_lm.extend(seqs, blocks)
        whole = torch.stack([tiny_lm.prefill([prefix + b])[1][0] for b in blocks])
    assert torch.allclose(extended, whole, atol=1e-4)
    assert shared.length == len(prefix)  # the cached prefix itself is left untouched
