"""One conformance suite for every engine behind `Backend`: the pure-Python table backend, transformers (the tiny
random Llama) and llama.cpp (the embedded GGUF; slow). The same checks run on each: the forward verbs agree with
each other (a block equals its tokens one by one, a fork cut short equals encoding the shorter sequence, rows in a
batch equal each row alone, padding and holes are invisible), and the search on top is exact (top_k=1 is the
engine's greedy decoding; pruning and reuse change nothing; a batch of prompts equals each prompt alone).
"""

from __future__ import annotations

import pytest
import torch

from deal_core import DeAL
from deal_core.backends.table import TableBackend

# log-probability tolerance per engine: the table is exact; fp32 torch and llama.cpp's kernels round differently
# when the same row is computed in another batch shape (the tiny model's logits reach ~20: ~1e-4 there)
ATOL = {"table": 0.0, "transformers": 5e-4, "llamacpp": 1e-3}
TEXT = "The dog runs in the park with a red ball and the kid"


@pytest.fixture(params=["table", "transformers", pytest.param("llamacpp", marks=pytest.mark.slow)])
def engine(request):
    """(name, backend)."""
    if request.param == "table":
        return "table", TableBackend()
    if request.param == "transformers":
        return "transformers", request.getfixturevalue("tiny_lm")
    return "llamacpp", request.getfixturevalue("embedded_llamacpp")


def logp(scores) -> torch.Tensor:
    return torch.log_softmax(torch.as_tensor(scores, dtype=torch.float64), -1)


def assert_same(name: str, a, b) -> None:
    a, b = logp(a), logp(b)
    assert a.shape == b.shape
    assert torch.equal(a.argmax(-1), b.argmax(-1))
    finite = torch.isfinite(b)
    assert torch.equal(torch.isfinite(a), finite)
    assert float((a[finite] - b[finite]).abs().max()) <= ATOL[name]


def test_a_block_equals_its_tokens_one_by_one(engine):
    name, lm = engine
    ids = lm.encode_text(TEXT)
    with lm.session():
        blocked, _ = lm.prefill([ids[:3]])
        at_once = lm.extend(blocked, [ids[3:9]])
        stepped, _ = lm.prefill([ids[:3]])
        for token in ids[3:9]:
            one = lm.step(stepped, [token], [True])
        assert blocked.length == stepped.length == 9
        assert_same(name, at_once, one)
        assert_same(name, at_once, lm.prefill([ids[:9]])[1])


def test_a_fork_cut_short_equals_encoding_the_shorter_sequence(engine):
    name, lm = engine
    ids = lm.encode_text(TEXT)
    with lm.session():
        whole, _ = lm.prefill([ids[:10]])
        forks = lm.gather([(whole, 0), (whole, 0)], 5)
        assert (forks.size, forks.length) == (2, 5)
        out = lm.extend(forks, [ids[5:7], [ids[9]]])
        assert_same(name, out[0:1], lm.prefill([ids[:7]])[1])
        assert_same(name, out[1:2], lm.prefill([ids[:5] + [ids[9]]])[1])
        # the source rows are untouched by their forks
        assert_same(name, lm.step(whole, [ids[10]], [True]), lm.prefill([ids[:11]])[1])


def test_rows_of_a_batch_equal_each_row_alone(engine):
    name, lm = engine
    ids = lm.encode_text(TEXT)
    prompts = [ids[:2], ids[:9], ids[3:8]]
    blocks = [ids[9:12], [ids[0]], ids[1:3]]
    with lm.session():
        rows, first = lm.prefill(prompts)
        assert (rows.size, rows.length) == (3, 9)
        then = lm.extend(rows, blocks)
        for i, (p, b) in enumerate(zip(prompts, blocks)):
            alone, alone_first = lm.prefill([p])
            assert_same(name, first[i: i + 1], alone_first)
            assert_same(name, then[i: i + 1], lm.extend(alone, [b]))


def test_padding_and_holes_are_invisible(engine):
    name, lm = engine
    ids = lm.encode_text(TEXT)
    short, long = ids[:3], ids[:8]
    with lm.session():
        a, _ = lm.prefill([short])
        b, _ = lm.prefill([long])
        joined = lm.gather([(lm.pad(a, 8), 0), (lm.pad(b, 8), 0)], 8)
        assert (joined.size, joined.length) == (2, 8)
        lm.step(joined, [ids[3], lm.pad_token_id], [True, False])  # row 1 gets a hole
        out = lm.step(joined, [ids[4], ids[8]], [True, True])
        assert joined.length == 10
        assert_same(name, out[0:1], lm.prefill([ids[:5]])[1])
        assert_same(name, out[1:2], lm.prefill([ids[:9]])[1])
        # a cut inside the holes keeps the real tokens before them
        cut = lm.gather([(joined, 1)], 9)
        assert_same(name, lm.step(cut, [ids[8]], [True]), lm.prefill([ids[:9]])[1])


def test_continuation_logprobs_match_the_forward_verbs(engine):
    name, lm = engine
    ids = lm.encode_text(TEXT)
    with lm.session():
        rows, scores = lm.prefill([ids[:4]])
        expected = []
        for token in ids[4:8]:
            expected.append(float(logp(scores)[0, token]))
            scores = lm.step(rows, [token], [True])
    got = lm.continuation_logprobs(ids[:4], ids[4:8])
    assert got == pytest.approx(expected, abs=max(ATOL[name], 1e-9))


@pytest.fixture
def deal_on(engine, vowels):
    name, lm = engine
    return name, DeAL(lm, rewards=vowels, use_chat_template=False, max_new_tokens=14)


def test_top1_search_equals_the_engines_greedy_decoding(deal_on):
    _, deal = deal_on
    for prompt in ("The dog runs in the park", "a big red sun and the sky"):
        greedy = deal.greedy(prompt)
        assert deal.generate(prompt, top_k=1, reward_weight=0.0).token_ids == greedy.token_ids


@pytest.mark.parametrize("settings", [dict(top_k=4, lookahead=3, commit=1, beam_width=1, reward_weight=3.0),
                                      dict(top_k=3, lookahead=4, commit=2, beam_width=2, reward_weight=2.0)])
def test_pruning_and_reuse_change_nothing(deal_on, settings):
    _, deal = deal_on
    prompt = "The kid sits in the park"
    results = [deal.generate(prompt, prune=prune, reuse=reuse, **settings)
               for prune in (True, False) for reuse in (True, False)]
    assert all(r.token_ids == results[0].token_ids for r in results[1:])


def test_a_batch_of_prompts_equals_each_prompt_alone(deal_on):
    _, deal = deal_on
    prompts = ["The dog runs in the park", "a red ball", "the big tree and the blue sky with a kid"]
    alone = [deal.generate(p, top_k=4, lookahead=3).token_ids for p in prompts]
    assert [r.token_ids for r in deal.generate_batch(prompts, top_k=4, lookahead=3)] == alone
