"""One conformance suite for every engine behind `Backend`: the pure-Python table backend, transformers (the tiny
random Llama) and llama.cpp (the embedded GGUF; slow). The same checks run on each: the forward verbs agree with
each other on sequence handles (a block equals its tokens one by one, a fork cut short equals encoding the shorter
sequence, sequences in a batch equal each alone, a step feeds only the handles it is given, handles of different
prefills and forks step together, a crop continues from the cut, a dropped handle leaves the others and is refused),
and the search on top is exact (top_k=1 is the
engine's greedy decoding; pruning and reuse change nothing; a batch of prompts equals each prompt alone).
"""

from __future__ import annotations

import pytest
import torch

from deal_core import DeAL
from deal_core.backends.table import TableBackend
from deal_core.config import make_config
from deal_core.prompts import EncodedPrompt
from deal_core.rewards import as_reward_sum
from deal_core.search import DeALSearch

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
        (blocked,), _ = lm.prefill([ids[:3]])
        at_once = lm.extend([blocked], [ids[3:9]])
        (stepped,), _ = lm.prefill([ids[:3]])
        for token in ids[3:9]:
            one = lm.step([stepped], [token])
        assert blocked.length == stepped.length == 9
        assert_same(name, at_once, one)
        assert_same(name, at_once, lm.prefill([ids[:9]])[1])


def test_a_fork_cut_short_equals_encoding_the_shorter_sequence(engine):
    name, lm = engine
    ids = lm.encode_text(TEXT)
    with lm.session():
        (whole,), _ = lm.prefill([ids[:10]])
        forks = lm.fork([whole, whole], [5, 5])
        assert [f.length for f in forks] == [5, 5] and whole.length == 10
        out = lm.extend(forks, [ids[5:7], [ids[9]]])
        assert [f.length for f in forks] == [7, 6]
        assert_same(name, out[0:1], lm.prefill([ids[:7]])[1])
        assert_same(name, out[1:2], lm.prefill([ids[:5] + [ids[9]]])[1])
        # the source is untouched by its forks; a fork at full length continues like the source
        assert_same(name, lm.step([whole], [ids[10]]), lm.prefill([ids[:11]])[1])
        (again,) = lm.fork([whole])
        assert again.length == 11
        assert_same(name, lm.step([again], [ids[11]]), lm.prefill([ids[:12]])[1])


def test_sequences_of_a_batch_equal_each_sequence_alone(engine):
    name, lm = engine
    ids = lm.encode_text(TEXT)
    prompts = [ids[:2], ids[:9], ids[3:8]]
    blocks = [ids[9:12], [ids[0]], ids[1:3]]
    with lm.session():
        seqs, first = lm.prefill(prompts)
        assert [s.length for s in seqs] == [2, 9, 5]
        then = lm.extend(seqs, blocks)
        for i, (p, b) in enumerate(zip(prompts, blocks)):
            (alone,), alone_first = lm.prefill([p])
            assert_same(name, first[i: i + 1], alone_first)
            assert_same(name, then[i: i + 1], lm.extend([alone], [b]))


def test_only_the_sequences_given_are_fed(engine):
    """A step feeds the handles it is given, in their order, and scores only them; the others are untouched."""
    name, lm = engine
    ids = lm.encode_text(TEXT)
    with lm.session():
        a, b, c = lm.prefill([ids[:2], ids[:7], ids[4:9]])[0]
        out = lm.step([c, a], [ids[9], ids[2]])
        assert len(out) == 2 and (a.length, b.length, c.length) == (3, 7, 6)
        assert_same(name, out[0:1], lm.prefill([ids[4:10]])[1])
        assert_same(name, out[1:2], lm.prefill([ids[:3]])[1])
        assert_same(name, lm.step([b], [ids[7]]), lm.prefill([ids[:8]])[1])
        out = lm.step([a, b, c], [ids[3], ids[8], ids[10]])
        for row, expected in enumerate([ids[:4], ids[:9], ids[4:11]]):
            assert_same(name, out[row: row + 1], lm.prefill([expected])[1])


def test_sequences_of_different_prefills_and_forks_step_together(engine):
    name, lm = engine
    ids = lm.encode_text(TEXT)
    with lm.session():
        (short,), _ = lm.prefill([ids[:3]])
        (long,), _ = lm.prefill([ids[:8]])
        (fork,) = lm.fork([long], [4])
        out = lm.step([long, short, fork], [ids[8], ids[3], ids[9]])
        assert_same(name, out[0:1], lm.prefill([ids[:9]])[1])
        assert_same(name, out[1:2], lm.prefill([ids[:4]])[1])
        assert_same(name, out[2:3], lm.prefill([ids[:4] + [ids[9]]])[1])
        out = lm.extend([fork, short], [ids[1:3], [ids[4]]])
        assert_same(name, out[0:1], lm.prefill([ids[:4] + [ids[9]] + ids[1:3]])[1])
        assert_same(name, out[1:2], lm.prefill([ids[:5]])[1])


def test_a_cropped_sequence_continues_from_where_it_was_cut(engine):
    name, lm = engine
    ids = lm.encode_text(TEXT)
    with lm.session():
        (seq,), _ = lm.prefill([ids[:6]])
        lm.step([seq], [ids[6]])
        lm.crop([seq], [3])
        assert seq.length == 3
        assert_same(name, lm.step([seq], [ids[9]]), lm.prefill([ids[:3] + [ids[9]]])[1])
        lm.crop([seq], [2])
        (fork,) = lm.fork([seq])
        assert_same(name, lm.extend([fork], [ids[5:8]]), lm.prefill([ids[:2] + ids[5:8]])[1])


def test_dropping_a_sequence_leaves_the_others_and_frees_its_room(engine):
    name, lm = engine
    ids = lm.encode_text(TEXT)
    with lm.session():
        a, b = lm.prefill([ids[:5], ids[2:6]])[0]
        (fork,) = lm.fork([a], [4])
        lm.drop([a])
        with pytest.raises(ValueError):
            lm.step([a], [ids[5]])
        out = lm.step([b, fork], [ids[6], ids[8]])
        assert_same(name, out[0:1], lm.prefill([ids[2:7]])[1])
        assert_same(name, out[1:2], lm.prefill([ids[:4] + [ids[8]]])[1])
        for _ in range(300):  # more than llama.cpp's sequence ids: dropped ones are reused
            lm.drop(lm.fork([b, fork]))
        assert_same(name, lm.step([b], [ids[9]]), lm.prefill([ids[2:7] + [ids[9]]])[1])


def test_continuation_logprobs_match_the_forward_verbs(engine):
    name, lm = engine
    ids = lm.encode_text(TEXT)
    with lm.session():
        (seq,), scores = lm.prefill([ids[:4]])
        expected = []
        for token in ids[4:8]:
            expected.append(float(logp(scores)[0, token]))
            scores = lm.step([seq], [token])
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


def test_the_search_drops_every_sequence_it_holds(vowels):
    """Forks of losing candidates, and the rows of finished or cancelled prompts, go back to the engine."""
    lm = TableBackend()
    deal = DeAL(lm, rewards=vowels, use_chat_template=False, max_new_tokens=10)
    deal.generate("The dog runs in the park", top_k=4, lookahead=3, beam_width=2, commit=2)
    deal.generate_batch(["a red ball", "the big tree and the blue sky"], top_k=3, lookahead=2)
    assert lm.held == 0
    config = make_config(None, top_k=3, lookahead=2, max_new_tokens=10)
    search = DeALSearch(lm, config)
    prompts = [EncodedPrompt(lm.encode_text(p), p) for p in ("a red ball", "the kid sits")]
    search.admit(prompts, [config] * 2, [as_reward_sum(vowels)] * 2, [None, None])
    search.step()
    assert lm.held == 2  # after the first pass each prompt is still topping up its own row: no forks yet
    search.drop({0})
    assert lm.held == 1
    while search.live:
        search.step()
    assert lm.held == 0
