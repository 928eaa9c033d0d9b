"""deal_core on the real embedded SmolLM2-135M-Instruct."""

import json
import subprocess
import sys
import time

import pytest
import torch

from deal_core import DeAL, load_model
from deal_core.bench.data import load_commongen
from deal_core.model import embedded_model_dir
from deal_core.prompts import encode_prompt
from deal_core.rewards import Keywords, Length
from tests.conftest import DATA_DIR

PROMPT = "Write a sentence using the words: dog, frisbee, park."
# CommonGen dev rows (0-based) where greedy SmolLM2 misses at least one concept.
HARD_SETS = [1, 4, 6, 8, 11, 12, 13, 16, 17, 18]


@pytest.fixture(scope="module")
def deal(embedded_lm):
    return DeAL(embedded_lm, max_new_tokens=48)


def test_embedded_model_loads_from_cache_quickly_and_is_shared(embedded_lm):
    assert embedded_lm.name == "SmolLM2-135M-Instruct"
    assert (embedded_model_dir() / "config.json").exists()
    start = time.perf_counter()
    again = load_model()
    assert again is embedded_lm and time.perf_counter() - start < 0.1
    assert embedded_lm.context_window == 8192 and embedded_lm.has_chat_template


@pytest.mark.parametrize("prompt", [PROMPT, "What is the capital of France?"])
def test_top1_without_reward_reproduces_transformers_greedy(deal, prompt):
    ids = encode_prompt(deal.lm, prompt).ids
    out = deal.lm.model.generate(torch.tensor([ids]), max_new_tokens=40, do_sample=False, top_k=None, top_p=None,
                                 temperature=None, pad_token_id=deal.lm.pad_token_id)
    expected = [t for t in out[0, len(ids):].tolist()]
    result = deal.generate(prompt, top_k=1, reward_weight=0.0, max_new_tokens=40)
    eos = next((i for i, t in enumerate(expected) if t in deal.lm.eos_token_ids), len(expected))
    assert result.token_ids == expected[:eos]
    assert deal.greedy(prompt, max_new_tokens=40).token_ids == result.token_ids


@pytest.mark.parametrize(("penalty", "ngram"), [(1.3, 0), (1.0, 3), (1.2, 2)])
def test_repetition_penalties_follow_transformers_generate(deal, penalty, ngram):
    """DeAL without a reward and one candidate equals transformers' greedy `generate` with the same
    repetition_penalty / no_repeat_ngram_size; with a reward the committed tokens still never repeat an n-gram."""
    prompt = "List the days of the week, again and again."
    greedy = deal.greedy(prompt, max_new_tokens=40, repetition_penalty=penalty, no_repeat_ngram_size=ngram)
    assert greedy.token_ids != deal.greedy(prompt, max_new_tokens=40).token_ids  # the penalty changes the answer
    same = deal.generate(prompt, top_k=1, reward_weight=0.0, max_new_tokens=40, repetition_penalty=penalty,
                         no_repeat_ngram_size=ngram)
    assert same.token_ids == greedy.token_ids
    if ngram:
        steered = deal.generate(prompt, rewards=Keywords(["Monday", "Sunday"]), max_new_tokens=40,
                                no_repeat_ngram_size=ngram)
        grams = [tuple(steered.token_ids[i:i + ngram]) for i in range(len(steered.token_ids) - ngram + 1)]
        assert len(grams) == len(set(grams))


def test_deterministic_and_exact_on_the_real_model(deal):
    reward = Keywords(keywords=["dog", "frisbee", "park", "sunny"])
    a = deal.generate(PROMPT, rewards=reward, reward_weight=3.0)
    b = deal.generate(PROMPT, rewards=reward, reward_weight=3.0)
    c = deal.generate(PROMPT, rewards=reward, reward_weight=3.0, prune=False)
    assert a.token_ids == b.token_ids == c.token_ids
    assert a.stats.forward_passes < c.stats.forward_passes


def test_batch_equals_single_calls_on_the_real_model(deal):
    prompts = [PROMPT, "Name a fruit.", "Write a sentence using the words: cat, couch, nap."]
    reward = Keywords(keywords=["cat", "nap", "dog"])
    batch = deal.generate_batch(prompts, rewards=reward, max_new_tokens=24)
    for p, r in zip(prompts, batch):
        assert r.text == deal.generate(p, rewards=reward, max_new_tokens=24).text


def test_streaming_on_the_real_model(deal):
    reward = Keywords(keywords=["dog", "frisbee", "park"])
    stream = deal.stream(PROMPT, rewards=reward)
    deltas = list(stream)
    assert "".join(deltas) == stream.result.text == deal.generate(PROMPT, rewards=reward).text
    assert len(deltas) >= 5


def test_length_reward_shortens_the_answer(deal):
    prompt = "Describe the ocean."
    plain = deal.generate(prompt, max_new_tokens=60)
    short = deal.generate(prompt, rewards=Length(max_words=8), reward_weight=5.0, max_new_tokens=60)
    assert len(short.text.split()) < len(plain.text.split())


@pytest.mark.slow
def test_keywords_raise_coverage_over_greedy_on_commongen(deal):
    sets = load_commongen(DATA_DIR / "commongen_dev.jsonl", max(HARD_SETS) + 1)
    better = 0
    for i in HARD_SETS:
        s = sets[i]
        reward = Keywords(keywords=s.concepts)
        greedy_cov = reward.score(s.prompt, deal.greedy(s.prompt).text)[0]
        aligned = deal.generate(s.prompt, rewards=reward, top_k=10, lookahead=10, reward_weight=5.0)
        better += aligned.rewards["keywords"] > greedy_cov
    assert better >= 8


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "deal_core.cli", *args], capture_output=True, text=True, timeout=300)


def test_cli_generate_json():
    proc = _cli("generate", PROMPT, "--keywords", "dog,frisbee,park", "--json")
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["text"] and payload["rewards"]["keywords"] == pytest.approx(1.0)
    assert {"steps", "forward_passes", "reward_calls", "wall_time_s"} <= set(payload["stats"])
    assert payload["settings"]["top_k"] == 10 and payload["model"] == "SmolLM2-135M-Instruct"


def test_cli_quality_options():
    proc = _cli("generate", "Write one sentence that uses all of these words: dry, face, towel, wash.", "--reward",
                "keywords=dry,face,towel,wash", "--reward", "fluency:0.5", "--no-repeat-ngram-size", "3",
                "--repetition-penalty", "1.1", "--max-new-tokens", "32", "--json")
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert set(payload["rewards"]) == {"keywords", "fluency"} and 0 < payload["rewards"]["fluency"] < 1
    assert (payload["settings"]["no_repeat_ngram_size"], payload["settings"]["repetition_penalty"]) == (3, 1.1)


def test_cli_greedy_and_trace():
    proc = _cli("generate", PROMPT, "--greedy", "--json", "--max-new-tokens", "12")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["mode"] == "greedy"
    proc = _cli("generate", PROMPT, "--keywords", "dog", "--trace", "--max-new-tokens", "3")
    assert proc.returncode == 0 and "step 0" in proc.stderr and "won" in proc.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["--top-k", "0"], "top_k"), (["--reward", "nope"], "unknown reward"), (["--lookahead", "1", "--commit", "5"],
                                                                                "commit=5")],
)
def test_cli_bad_input_exits_nonzero_with_a_message(args, needle):
    proc = _cli("generate", PROMPT, *args)
    assert proc.returncode == 2
    assert needle in proc.stderr.replace("\n", " ")


def test_cli_empty_prompt():
    proc = _cli("generate", "  ")
    assert proc.returncode == 2 and "prompt is empty" in proc.stderr.replace("\n", " ")
