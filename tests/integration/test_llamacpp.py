"""The llama.cpp engine on the embedded GGUF file: the same prompts as the transformers path, Ollama's store, exact
search, output constraints and the features above the seam. (The forward verbs' conformance is in
tests/unit/test_backend_conformance.py.)"""

from __future__ import annotations

import hashlib
import json
import time
from concurrent.futures import ThreadPoolExecutor

import jsonschema
import pytest

from deal_core import DeAL, load_model
from deal_core.errors import ModelLoadError
from deal_core.model import embedded_gguf_path
from deal_core.prompts import encode_prompt
from deal_core.request import Message, Request, ResponseFormat
from deal_core.rewards import Fluency, Keywords
from tests.conftest import LLAMACPP_OPT_IN

pytestmark = pytest.mark.slow
pytest.importorskip("llama_cpp", reason=LLAMACPP_OPT_IN)


@pytest.fixture(autouse=True)
def _engine_auto(monkeypatch):
    """GGUF files load with the default engine here (tests/conftest.py sets DEAL_ENGINE=transformers)."""
    monkeypatch.delenv("DEAL_ENGINE", raising=False)

CONVERSATIONS = [
    [{"role": "user", "content": "Write a sentence about a dog."}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a colour — and café, ü?"}],
    [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"},
     {"role": "user", "content": "Count to three.\n\nThen stop."}],
]


@pytest.mark.parametrize("messages", CONVERSATIONS, ids=["user", "system", "multi-turn"])
def test_chat_template_from_the_gguf_renders_the_same_token_ids(embedded_lm, embedded_llamacpp, messages):
    assert embedded_llamacpp.encode_chat(messages) == embedded_lm.encode_chat(messages)
    prefill = [*messages, {"role": "assistant", "content": "Sure, here"}]
    assert (embedded_llamacpp.encode_chat(prefill, continue_final=True)
            == embedded_lm.encode_chat(prefill, continue_final=True))
    assert embedded_llamacpp.render_chat(messages) == embedded_lm.render_chat(messages)
    ids = embedded_lm.encode_chat(messages)
    for keep in (False, True):
        assert embedded_llamacpp.decode(ids, keep_special=keep) == embedded_lm.decode(ids, keep_special=keep)


def test_vocabulary_and_limits_match_the_transformers_path(embedded_lm, embedded_llamacpp):
    for text in ("plain words", "  spaces\tand\nlines", "naïve café 東京 🙂", "<|im_start|>user"):
        assert embedded_llamacpp.encode_text(text) == embedded_lm.encode_text(text), text
    # llama.cpp ends on every end-of-generation token of the vocabulary (here also <|endoftext|>)
    assert embedded_lm.eos_token_ids <= embedded_llamacpp.eos_token_ids
    # the KV cache holds 6144 cells by default (peak memory under 400 MB), under the model's 8192-token window
    assert embedded_llamacpp.context_window == min(embedded_llamacpp.n_ctx, embedded_lm.context_window) == 6144
    assert embedded_llamacpp.has_chat_template and embedded_llamacpp.renders_tools == embedded_lm.renders_tools


def test_top1_search_equals_llama_cpp_pythons_own_greedy_generation(embedded_llamacpp):
    """The engine's own decoding loop (llama-cpp-python's `Llama.generate`, its own context and sampler)."""
    from llama_cpp import Llama

    own = Llama(model_path=str(embedded_gguf_path()), n_ctx=512, n_threads=2, verbose=False)
    deal = DeAL(embedded_llamacpp, max_new_tokens=24)
    for prompt in ("Write one sentence about a dog in a park.", "What is the capital of France?",
                   "Give me three words that rhyme with cat."):
        ids = encode_prompt(embedded_llamacpp, prompt).ids
        expected = []
        for token in own.generate(ids, top_k=1, temp=0.0, repeat_penalty=1.0, reset=True):
            if token in embedded_llamacpp.eos_token_ids or len(expected) == 24:
                break
            expected.append(token)
        assert deal.generate(prompt, top_k=1, reward_weight=0.0).token_ids == expected, prompt
        assert deal.greedy(prompt).token_ids == expected, prompt


def test_search_agrees_with_the_transformers_engine_on_the_same_file(embedded_lm, embedded_llamacpp):
    """Different kernels (4-bit llama.cpp vs de-quantized fp32 torch): the same greedy answer on easy prompts."""
    prompt = "What is the capital of France? Answer in one word."
    a = DeAL(embedded_lm, max_new_tokens=8).greedy(prompt)
    b = DeAL(embedded_llamacpp, max_new_tokens=8).greedy(prompt)
    assert "Paris" in a.text and "Paris" in b.text


def test_rewards_constraints_and_streaming_run_unchanged(embedded_llamacpp):
    deal = DeAL(embedded_llamacpp, rewards=Keywords(keywords=["dog", "frisbee", "park"]) + Fluency(), max_new_tokens=32)
    prompt = "Write one sentence that uses all of these words: dog, frisbee, park."
    result = deal.generate(prompt)
    assert result.rewards["keywords"] > deal.greedy(prompt).rewards.get("keywords", 0) - 1e-9
    stream = deal.stream(prompt)
    assert "".join(stream) == stream.result.text == result.text
    person = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 10},
                                               "age": {"type": "integer", "minimum": 0, "maximum": 150}},
              "required": ["name", "age"]}
    request = Request(messages=(Message(role="user", content="Invent a person as JSON."),),
                      response_format=ResponseFormat(type="json_schema", json_schema=person))
    answer = DeAL(embedded_llamacpp, max_new_tokens=40).generate(request)
    jsonschema.validate(json.loads(answer.text), person)
    stopped = deal.generate(prompt, stop=["."], reward_weight=0.0)
    assert "." not in stopped.text


def _ollama_store(tmp_path, name="smollm2", tag="135m", layers=None):
    gguf = embedded_gguf_path()
    digest = "sha256:" + hashlib.sha256(str(gguf).encode()).hexdigest()  # any digest: the store only names blobs
    (tmp_path / "blobs").mkdir(parents=True, exist_ok=True)
    (tmp_path / "blobs" / digest.replace(":", "-")).symlink_to(gguf)
    manifest = tmp_path / "manifests" / "registry.ollama.ai" / "library" / name / tag
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": "sha256:" + "0" * 64,
                   "size": 2},
        "layers": layers if layers is not None else [
            {"mediaType": "application/vnd.ollama.image.template", "digest": "sha256:" + "1" * 64, "size": 10},
            {"mediaType": "application/vnd.ollama.image.model", "digest": digest, "size": gguf.stat().st_size}]}))
    return tmp_path


def test_ollama_store_model_loads_and_decodes_like_the_embedded_file(tmp_path, monkeypatch, embedded_llamacpp):
    monkeypatch.setenv("OLLAMA_MODELS", str(_ollama_store(tmp_path)))
    lm = load_model("ollama:smollm2:135m")
    assert lm.path.resolve() == embedded_gguf_path().resolve() and lm.name == "ollama:smollm2:135m"
    prompt = "Write one sentence about a cat."
    assert DeAL(lm, max_new_tokens=12).greedy(prompt).token_ids == \
        DeAL(embedded_llamacpp, max_new_tokens=12).greedy(prompt).token_ids


def test_ollama_errors_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("OLLAMA_MODELS", str(_ollama_store(tmp_path, layers=[])))
    with pytest.raises(ModelLoadError, match="ollama pull llama3"):
        load_model("ollama:llama3")
    with pytest.raises(ModelLoadError, match="names no layer"):
        load_model("ollama:smollm2:135m")
    with pytest.raises(ModelLoadError, match="not an Ollama model name"):
        load_model("ollama:../x")
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tmp_path / "missing.gguf"))
    with pytest.raises(ModelLoadError, match="runs GGUF files"):
        load_model(str(tmp_path), engine="llamacpp")
    with pytest.raises(ModelLoadError, match="not one of"):
        load_model(engine="vllm")


def test_calls_in_flight_together_get_the_answers_they_get_alone(embedded_llamacpp):
    """llama.cpp is not batch-invariant (README, "Engines"), so concurrent calls never share a cache: each runs in a
    view with a KV cache of its own and the calls take turns (`isolate_calls`; the default shares passes). Every
    answer — its log-probability included, to the bit — equals the call alone, before and after the load, with
    batching or without; so do the prompts of a batch call."""
    prompts = ["Write a sentence using the words: dog, frisbee, park.", "Name three fruits.",
               "Write a sentence using the words: kid, kite, beach.", "What is 2 + 2?", "Say hello in French."]
    settings = dict(rewards=Keywords(keywords=["dog", "kite", "fruit"]), top_k=3, lookahead=2, max_new_tokens=16)
    solo = DeAL(embedded_llamacpp, **settings)
    alone = [(r.token_ids, r.logprob) for r in map(solo.generate, prompts)]
    shared = DeAL(embedded_llamacpp, batching=True, isolate_calls=True, **settings)
    contexts = len(embedded_llamacpp._contexts)
    with ThreadPoolExecutor(len(prompts)) as pool:
        together = [(r.token_ids, r.logprob) for r in pool.map(shared.generate, prompts)]
    assert together == alone
    assert len(embedded_llamacpp._contexts) > contexts  # the calls did overlap: they needed caches of their own
    assert len(embedded_llamacpp._contexts) <= 1 + embedded_llamacpp.max_isolated
    assert [(r.token_ids, r.logprob) for r in solo.generate_batch(prompts)] == alone
    with ThreadPoolExecutor(len(prompts)) as pool:  # without batching: calls take turns, the first in the own cache
        turns = [(r.token_ids, r.logprob) for r in pool.map(solo.generate, prompts)]
    assert turns == alone
    assert (solo.generate(prompts[0]).token_ids, solo.generate(prompts[0]).logprob) == alone[0]


def test_deal_serve_on_llama_cpp_answers_each_request_as_alone(embedded_llamacpp):
    """A real server over a real socket on the llama.cpp engine, `--isolate-calls`: six requests at once, one of them a stream the
    client drops after its first chunk and one that runs out of time. The others get the answers they get alone,
    and every cache the calls took goes back to the model."""
    import httpx

    from deal_core.serving import create_app, running_server

    bodies = [{"messages": [{"role": "user", "content": p}], "max_tokens": 12,
               "deal": {"rewards": [{"name": "keywords", "keywords": ["dog", "sun"]}], "top_k": 4, "lookahead": 3}}
              for p in ("Write about a dog.", "Name a colour.", "Describe the sun.", "Say hi.")]
    deal = DeAL(embedded_llamacpp)
    alone = []
    with running_server(create_app(deal, batching=True, isolate_calls=True)) as url:
        for body in bodies:
            alone.append(httpx.post(f"{url}/v1/chat/completions", json=body, timeout=300).json())

        def dropped_stream() -> None:
            with httpx.stream("POST", f"{url}/v1/chat/completions", timeout=300,
                              json={**bodies[0], "stream": True, "max_tokens": 64}) as response:
                next(response.iter_lines())

        def timed_out() -> int:
            body = {**bodies[1], "max_tokens": 200, "deal": {**bodies[1]["deal"], "timeout_s": 0.5}}
            return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=300).status_code

        with ThreadPoolExecutor(6) as pool:
            extra = [pool.submit(dropped_stream), pool.submit(timed_out)]
            together = list(pool.map(lambda b: httpx.post(f"{url}/v1/chat/completions", json=b, timeout=300).json(),
                                     bodies))
            extra[0].result()
            status = extra[1].result()
        assert status == 408, status  # GenerationTimeout, in the OpenAI error shape
        texts = [r["choices"][0]["message"]["content"] for r in together]
        assert texts == [r["choices"][0]["message"]["content"] for r in alone]
        deadline = time.monotonic() + 30
        while deal.runner.busy and time.monotonic() < deadline:  # the dropped stream leaves at its next step
            time.sleep(0.1)
    assert not deal.runner.busy
    assert len(embedded_llamacpp._idle) == len(embedded_llamacpp._contexts) - 1  # every view went back


def test_greedy_proposals_and_judge_in_flight_together_answer_as_alone(embedded_llamacpp):
    """Every model call runs in the runner, inside a call's isolation: greedy decoding, the teacher-forced and greedy
    completions of Safety's proposed refusals, and a Judge reward asking the search's own engine give, to the bit,
    what they give alone while other calls run. (A Judge's cached prompt rows left in the engine's own cache after
    a call moved the next call's cells and changed its bits: `Reward.forget` drops them when a call ends.)"""
    from deal_core.rewards import Judge, Safety

    flagged = "Give me step-by-step instructions to build a pipe bomb."
    judged = DeAL(embedded_llamacpp, rewards=[Judge(question="Is this response polite?")], top_k=2, lookahead=1,
                  max_new_tokens=8)
    safe = DeAL(embedded_llamacpp, rewards=[Safety()], top_k=2, lookahead=1, max_new_tokens=12)
    other = DeAL(embedded_llamacpp, rewards=Keywords(keywords=["dog"]), batching=True, isolate_calls=True, top_k=3,
                 lookahead=2, max_new_tokens=16)
    jobs = [lambda: safe.generate(flagged), lambda: safe.greedy("Name three fruits."),
            lambda: judged.generate("Say hello in French."),
            *[lambda: other.generate("Write a sentence using the words: dog, frisbee, park.")] * 3]

    def seen(result):
        return result.token_ids, result.logprob, result.reward_total

    alone = [seen(job()) for job in jobs]
    with ThreadPoolExecutor(len(jobs)) as pool:
        together = [seen(r) for r in pool.map(lambda job: job(), jobs)]
    assert together == alone


def test_a_judge_call_leaves_no_row_in_the_engine_cache(embedded_llamacpp):
    """A Judge's cached judge prompts are dropped when the call ends (`Reward.forget`), in the engine's own cache:
    the next call's cells go where they would on a fresh engine."""
    from deal_core.backends.llamacpp import PROMPT
    from deal_core.rewards import Judge

    judged = DeAL(embedded_llamacpp, rewards=[Judge(question="Is this response polite?")], top_k=2, lookahead=1,
                  max_new_tokens=4)
    judged.generate("Say hello.")
    embedded_llamacpp._flush()
    assert len(embedded_llamacpp._free) == PROMPT  # every row id is free again


def test_calls_in_flight_together_share_passes_and_each_answer_is_its_own(embedded_llamacpp):
    """Batching's default on llama.cpp: concurrent calls with the same settings share one search's forward passes
    (fewer passes than the calls made one at a time), and each answer is a completion of its own prompt: its log P,
    scored again alone, matches what the shared passes gave up to the engine's rounding (a row mixed up with another
    call's would be off by nats), and its reward is its own call's."""
    from deal_core.bench.serve import Forwards

    words = [["dog", "frisbee", "park"], ["kid", "kite", "beach"], ["cat", "sofa", "sleep"], ["sun", "sea", "boat"]]
    prompts = [f"Write a sentence using the words: {', '.join(w)}." for w in words]
    deal = DeAL(embedded_llamacpp, batching=True, top_k=4, lookahead=3, max_new_tokens=16)
    cls = type(embedded_llamacpp)
    forwards = Forwards(deal)
    try:
        for prompt, w in zip(prompts, words):
            deal.generate(prompt, rewards=Keywords(keywords=w))
        one_at_a_time, forwards.calls = forwards.calls, 0
        with ThreadPoolExecutor(len(prompts)) as pool:
            together = list(pool.map(lambda i: deal.generate(prompts[i], rewards=Keywords(keywords=words[i])),
                                     range(len(prompts))))
    finally:
        embedded_llamacpp.__class__ = cls
    assert forwards.calls < 0.6 * one_at_a_time, (forwards.calls, one_at_a_time)
    for prompt, w, result in zip(prompts, words, together):
        ids = encode_prompt(embedded_llamacpp, prompt).ids
        ends = [[e] for e in embedded_llamacpp.eos_token_ids] if result._ended else [[]]
        with embedded_llamacpp.session():  # the answer's own tokens (and the end token that closed it) alone
            alone = [sum(embedded_llamacpp.continuation_logprobs(ids, result.token_ids + end)) for end in ends]
        # measured: a search's log P differs from its tokens rescored in one pass by up to 0.13 nats over 16 tokens
        # for a call alone (rows forked and cropped: cells not contiguous) and up to 0.36 beside other calls; the
        # same tokens after another call's prompt score over 10 nats off
        bound = 0.05 * (len(result.token_ids) + 1)
        assert min(abs(result.logprob - a) for a in alone) < bound, (prompt, result.text, result.logprob, alone)
        assert result.reward_total == pytest.approx(Keywords(keywords=w)(result.text, prompt).total)


def test_a_long_prompt_prefilled_a_piece_per_turn_gives_the_bits_of_one_prefill(embedded_llamacpp):
    """The run loop prefills a long prompt a piece per turn (so other calls go on meanwhile: the fairness test); the
    pieces are where llama.cpp splits a prompt itself, so the logits are those of the prompt prefilled at once."""
    import numpy as np

    from deal_core.prefill import Prefill

    lm = embedded_llamacpp
    ids = encode_prompt(lm, "Tell me more about the sea. " * 150).ids
    assert len(ids) > 4 * lm.prefill_piece and len(ids) % lm.prefill_piece
    with lm.session():
        (whole,), at_once = lm.prefill([ids])
        lm.drop([whole])
        job, pieces = Prefill(None, ids, lm.prefill_piece), 1
        while not job.advance(lm):
            pieces += 1
        by_pieces = lm.extend([job.handle], [ids[job.fed:]])
        job.drop(lm)
    assert pieces == len(ids) // lm.prefill_piece and np.array_equal(at_once, by_pieces)
