"""`deal serve --ray`: the same app as a Ray Serve deployment, two replicas behind one HTTP endpoint on a real
local Ray cluster (started here, 2 CPUs), called over a real socket with the real `openai` client and the real
embedded model. Answers equal the same request made to a local `DeAL`."""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
import ray
from ray import serve

from deal_core import DeAL, load_model
from deal_core.jobs.ray_serve import REPLICA_HEADER, start
from deal_core.rewards import Keywords

pytestmark = pytest.mark.slow
DEAL = {"top_k": 3, "lookahead": 2}


@pytest.fixture(scope="module")
def url():
    ray.init(num_cpus=2, include_dashboard=False)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    try:
        # one request in flight per replica: concurrent requests must spread over both
        yield start(port=port, replicas=2, max_ongoing_requests=1, limits={"max_tokens": 64})
    finally:
        serve.shutdown()
        ray.shutdown()


@pytest.fixture(scope="module")
def local():
    return DeAL(load_model(), **DEAL)


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)


def test_two_replicas_answer_concurrent_requests_as_a_local_deal_would(url, local):
    api = client(url)
    assert [m.id for m in api.models.list().data] == [local.lm.name]
    assert httpx.get(f"{url}/health").json()["status"] == "ok"
    words = ["dog", "river", "bread", "music", "snow", "garden"]

    def ask(word: str) -> tuple[str, str, str]:
        raw = api.chat.completions.with_raw_response.create(
            model=local.lm.name, messages=[{"role": "user", "content": f"Write a sentence about a {word}."}],
            max_tokens=8, extra_body={"deal": {"rewards": [{"name": "keywords", "keywords": [word]}], **DEAL}})
        reply = raw.parse()
        return raw.headers[REPLICA_HEADER], reply.choices[0].message.content, reply.choices[0].finish_reason

    with ThreadPoolExecutor(len(words)) as pool:
        answers = list(pool.map(ask, words))
    assert len({replica for replica, _, _ in answers}) == 2  # one endpoint, both replicas answered
    for word, (_, text, finish) in zip(words, answers):
        alone = local.generate(f"Write a sentence about a {word}.", rewards=Keywords([word]), max_new_tokens=8)
        assert text == alone.text and finish == {"eos": "stop", "stop": "stop", "length": "length"}[
            alone.finish_reason]


def test_streaming_and_errors_pass_through_the_proxy(url, local):
    api = client(url)
    messages = [{"role": "user", "content": "Name a colour."}]
    chunks = list(api.chat.completions.create(model="", messages=messages, max_tokens=6, stream=True,
                                              stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == local.generate(messages, max_new_tokens=6).text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    with pytest.raises(openai.BadRequestError, match="limit of 64"):  # the replica's limits, OpenAI's error shape
        api.chat.completions.create(model="", messages=messages, max_tokens=1000)
    with pytest.raises(openai.BadRequestError, match="unknown reward"):
        api.chat.completions.create(model="", messages=messages, max_tokens=4,
                                    extra_body={"deal": {"rewards": [{"name": "os.system"}]}})
