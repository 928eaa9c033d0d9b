"""`deal serve` over real HTTP: a uvicorn server on a free loopback port, called with the real `openai` client."""

from __future__ import annotations

import json
import threading
import time

import httpx
import openai
import pytest

from deal_core import DeAL
from deal_core.rewards import Fluency, Keywords
from deal_core.serving import ServerLimits, create_app, running_server
from tests.server.serve_process import deal_serve

running = running_server


@pytest.fixture(scope="module")
def tiny_server(tiny_lm):
    with running(create_app(DeAL(tiny_lm), limits=ServerLimits(max_request_bytes=20_000, max_tokens=64))) as url:
        yield url


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)


def test_models_health_and_a_plain_chat_call(tiny_server, tiny_lm):
    api = client(tiny_server)
    assert [m.id for m in api.models.list().data] == [tiny_lm.name]
    assert httpx.get(f"{tiny_server}/health").json()["status"] == "ok"
    reply = api.chat.completions.create(model=tiny_lm.name, messages=[{"role": "user", "content": "Hello there"}],
                                        max_tokens=6)
    expected = DeAL(tiny_lm).generate("Hello there", max_new_tokens=6)
    assert reply.choices[0].message.content == expected.text
    assert reply.choices[0].finish_reason == {"eos": "stop", "stop": "stop", "length": "length"}[
        expected.finish_reason]
    assert reply.usage.completion_tokens == len(expected.token_ids) and reply.usage.prompt_tokens > 0


def test_streaming_deltas_join_to_the_same_text_and_end_with_usage(tiny_server):
    api = client(tiny_server)
    messages = [{"role": "user", "content": "Hello there"}]
    whole = api.chat.completions.create(model="", messages=messages, max_tokens=8).choices[0].message.content
    chunks = list(api.chat.completions.create(model="", messages=messages, max_tokens=8, stream=True,
                                              stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] in ("stop", "length")
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_deal_settings_and_rewards_travel_in_extra_body(tiny_server, tiny_lm):
    api = client(tiny_server)
    deal = {"rewards": [{"name": "keywords", "keywords": ["the"], "weight": 1.0}], "top_k": 4, "lookahead": 2}
    reply = api.chat.completions.create(model="", messages=[{"role": "user", "content": "Hello there"}],
                                        max_tokens=8, extra_body={"deal": deal})
    expected = DeAL(tiny_lm).generate("Hello there", rewards=Keywords(["the"]), max_new_tokens=8, top_k=4,
                                      lookahead=2)
    assert reply.choices[0].message.content == expected.text
    assert reply.model_extra["deal"]["rewards"] == pytest.approx(expected.rewards)


def test_repetition_settings_and_fluency_travel_in_extra_body(tiny_server, tiny_lm):
    deal = {"rewards": [{"name": "keywords", "keywords": ["the"]}, {"name": "fluency", "weight": 0.5}],
            "no_repeat_ngram_size": 2, "repetition_penalty": 1.2}
    reply = client(tiny_server).chat.completions.create(
        model="", messages=[{"role": "user", "content": "Hello there"}], max_tokens=8, extra_body={"deal": deal})
    expected = DeAL(tiny_lm).generate("Hello there", rewards=Keywords(["the"]) + Fluency() * 0.5, max_new_tokens=8,
                                      no_repeat_ngram_size=2, repetition_penalty=1.2)
    assert reply.choices[0].message.content == expected.text
    assert reply.model_extra["deal"]["rewards"] == pytest.approx(expected.rewards)


def test_text_completions_use_no_chat_template(tiny_server, tiny_lm):
    reply = client(tiny_server).completions.create(model="", prompt="Once upon a time", max_tokens=5)
    expected = DeAL(tiny_lm, use_chat_template=False).generate("Once upon a time", max_new_tokens=5)
    assert reply.choices[0].text == expected.text


@pytest.mark.parametrize(("body", "status", "needle"), [
    ({"messages": []}, 422, "messages"),
    ({"messages": [{"role": "user", "content": "Hi"}], "n": 2}, 400, "n=2"),
    ({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 100000}, 400, "limit of 64"),
    ({"messages": [{"role": "user", "content": "Hi"}], "model": "gpt-9"}, 404, "not served here"),
    ({"messages": [{"role": "wizard", "content": "Hi"}]}, 400, "role"),
    ({"messages": [{"role": "user", "content": "Hi"}], "deal": {"top_k": 0}}, 400, "top_k"),
    ({"messages": [{"role": "user", "content": "Hi"}], "deal": {"top_kk": 3}}, 400, "unknown setting"),
    ({"messages": [{"role": "user", "content": "Hi"}], "deal": {"rewards": [{"name": "os.system"}]}}, 400,
     "unknown reward"),
    ({"messages": [{"role": "user", "content": "Hi"}],
      "deal": {"rewards": [{"name": "reward_model", "model": "/tmp", "trust_remote_code": True}]}}, 400,
     "only be set in Python"),
    ({"messages": [{"role": "user", "content": "Hi"}], "response_format": {"type": "json_schema"}}, 400,
     "needs a schema"),
    ({"messages": [{"role": "user", "content": "Hi"}], "tool_choice": "required"}, 400, "needs tools"),
    ({"messages": [{"role": "user", "content": "Hi"}], "tools": [{"type": "function", "function": {"name": "f"}}],
      "tool_choice": "g"}, 400, "not one of the tools"),
    ({"messages": [{"role": "user", "content": "Hi"}], "tools": [{"type": "function", "function": {"name": "f",
      "parameters": {"type": "object", "properties": {"a": {"type": "strnig"}}}}}], "tool_choice": "f"}, 400,
     "cannot be enforced"),
    ({"messages": [{"role": "user", "content": "Hi"}, {"role": "tool", "content": "4", "tool_call_id": "x"}]}, 400,
     "no assistant message before it made a tool call"),
    ({"messages": [{"role": "user", "content": "Hi"}], "tools": [{"type": "function", "function": 3}]}, 400,
     "tools[0]"),
    ({"messages": [{"role": "user", "content": "x" * 30_000}]}, 413, "bytes"),
])
def test_bad_requests_get_openai_errors(tiny_server, body, status, needle):
    response = httpx.post(f"{tiny_server}/v1/chat/completions", json=body, timeout=60)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert needle in error["message"] and error["type"] == "invalid_request_error"


def test_the_openai_client_raises_typed_errors(tiny_server):
    with pytest.raises(openai.BadRequestError, match="unknown reward"):
        client(tiny_server).chat.completions.create(
            model="", messages=[{"role": "user", "content": "Hi"}], extra_body={"deal": {"rewards": [{"name": "x"}]}})


def test_concurrent_requests_with_different_rewards_do_not_mix(tiny_server, tiny_lm):
    words = ["the", "a", "of", "and"]
    results: dict[str, str] = {}

    def call(word: str) -> None:
        body = {"messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 6,
                "deal": {"rewards": [{"name": "keywords", "keywords": [word]}], "top_k": 4, "lookahead": 2}}
        results[word] = httpx.post(f"{tiny_server}/v1/chat/completions", json=body, timeout=120).json()[
            "choices"][0]["message"]["content"]

    threads = [threading.Thread(target=call, args=(w,)) for w in words]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    deal = DeAL(tiny_lm)
    for word in words:
        alone = deal.generate("Hello there", rewards=Keywords([word]), max_new_tokens=6, top_k=4, lookahead=2)
        assert results[word] == alone.text


def test_a_client_that_disconnects_stops_its_search(tiny_lm, monkeypatch):
    deal, steps = DeAL(tiny_lm), []
    step = tiny_lm.step
    monkeypatch.setattr(tiny_lm, "step", lambda *args: (steps.append(1), step(*args))[1])
    settings = {"max_new_tokens": 64, "top_k": 8, "lookahead": 8}
    deal.generate("Hello there", **settings)
    full, steps[:] = len(steps), []  # forwards a whole answer takes
    with running(create_app(deal, limits=ServerLimits(max_tokens=64))) as url:
        body = {"messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 64, "stream": True,
                "deal": {"top_k": 8, "lookahead": 8}}
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60) as response:
            first = next(response.iter_lines())
            assert first.startswith("data: ") and json.loads(first[6:])["object"] == "chat.completion.chunk"
        deadline = time.monotonic() + 20  # the dropped request's search ends: the model lock is free again
        while not tiny_lm.lock.acquire(timeout=0.1):
            assert time.monotonic() < deadline, "the dropped request kept the model busy"
        tiny_lm.lock.release()
        time.sleep(0.5)
    assert len(steps) < full / 2, (len(steps), full)


@pytest.mark.slow
def test_the_embedded_model_served_over_http_follows_a_reward(embedded_lm):
    """Real model, real socket, real `openai` client: a keyword reward sent in extra_body reaches the search (the
    answer is the in-process one, token for token) and covers the concept plain decoding misses."""
    from deal_core.bench.data import commongen_prompt

    concepts = ["climb", "talk", "wall"]
    prompt, reward = commongen_prompt(concepts), Keywords(concepts)
    with running(create_app(DeAL(embedded_lm))) as url:
        api = client(url)
        messages = [{"role": "user", "content": prompt}]
        plain = api.chat.completions.create(model="", messages=messages, max_tokens=32, extra_body={"deal": {}})
        steered = api.chat.completions.create(
            model="", messages=messages, max_tokens=32,
            extra_body={"deal": {"rewards": [{"name": "keywords", "keywords": concepts, "weight": 1.0}]}})
    local = DeAL(embedded_lm).generate(prompt, rewards=reward, max_new_tokens=32)
    assert steered.choices[0].message.content == local.text
    assert steered.model_extra["deal"]["rewards"]["keywords"] == 1.0
    assert reward.score(prompt, plain.choices[0].message.content)[0] < 1.0  # greedy misses a concept here


@pytest.mark.slow
def test_deal_serve_command_starts_a_working_server(tmp_path):
    import subprocess
    import sys

    with deal_serve(tmp_path, "--reward", "keywords=park") as url:
        reply = client(url).chat.completions.create(
            model="", messages=[{"role": "user", "content": "Name a place to walk a dog."}], max_tokens=12)
        assert "keywords" in reply.model_extra["deal"]["rewards"]  # the server-wide default reward was used
    bad = subprocess.run([sys.executable, "-m", "deal_core.cli", "serve", "--reward", "nope"], capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error: unknown reward")


def test_every_body_is_checked_against_the_openai_packages_own_types():
    """Issue 23: responses go through `openai.types` (ChatCompletion, Completion, ChatCompletionChunk): a shape
    the openai client would not parse fails here, in the server, not in a user's client."""
    import pydantic

    from deal_core.serving.protocol import openai_shape

    body = {"id": "x", "object": "chat.completion", "created": 0, "model": "m", "deal": {"rewards": {}},
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop",
                         "logprobs": None}]}
    assert openai_shape(body)["deal"] == {"rewards": {}}  # our extension field is kept
    with pytest.raises(pydantic.ValidationError):
        openai_shape({**body, "choices": [{**body["choices"][0], "finish_reason": "eos"}]})  # not an OpenAI reason
