"""Issue 22's fairness test: one hostile request of each kind next to four ordinary ones, on the embedded model
over a real socket. The ordinary requests finish within 2× the time they take without it, and /health answers in
under 100 ms (95th percentile; the worst ping under 500 ms). Latencies are printed (`pytest -s`)."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from deal_core import DeAL
from deal_core.serving import ServerLimits, create_app, running_server

ORDINARY = {"messages": [{"role": "user", "content": "Write a sentence using the words: dog, frisbee, park."}],
            "max_tokens": 12, "deal": {"rewards": [{"name": "keywords", "keywords": ["dog", "frisbee", "park"]}]}}
PATTERN = {"type": "object", "properties": {"s": {"type": "string", "pattern": "^(a|aa)+$"}}}
HOSTILE = {
    "largest settings": {"messages": ORDINARY["messages"], "max_tokens": 1024,
                         "deal": {"top_k": 20, "lookahead": 16, "reward_weight": 100}},
    "longest prompt": {"messages": [{"role": "user", "content": "tell me more " * 2000}], "max_tokens": 1024,
                       "deal": {"truncate_prompt": True}},
    "backtracking pattern": {"messages": [{"role": "user", "content": "Say " + "a" * 40 + "!"}], "max_tokens": 64,
                             "deal": {"rewards": [{"name": "json_schema", "json_schema": PATTERN}]}},
}


def _ordinary_round(url: str) -> tuple[float, list[float]]:
    """Four ordinary requests at once, /health pinged meanwhile: (slowest request, /health latencies) in seconds."""
    health: list[float] = []
    done = threading.Event()

    def ping() -> None:
        while not done.is_set():
            start = time.perf_counter()
            assert httpx.get(f"{url}/health", timeout=5).status_code == 200
            health.append(time.perf_counter() - start)
            time.sleep(0.05)

    def one(_: int) -> float:
        start = time.perf_counter()
        response = httpx.post(f"{url}/v1/chat/completions", json=ORDINARY, timeout=300)
        assert response.status_code == 200, response.text
        return time.perf_counter() - start

    pinger = threading.Thread(target=ping, daemon=True)
    pinger.start()
    with ThreadPoolExecutor(4) as pool:
        slowest = max(pool.map(one, range(4)))
    done.set()
    pinger.join()
    return slowest, sorted(health)


def _hostile(url: str, body: dict, stop: threading.Event) -> None:
    """Sends `body` and hangs up when `stop` is set (its search then ends at the next step)."""
    try:
        with httpx.stream("POST", f"{url}/v1/chat/completions", json={**body, "stream": True},
                          timeout=300) as response:
            for _ in response.iter_lines():
                if stop.is_set():
                    return
    except httpx.HTTPError:
        pass


@pytest.fixture(scope="module", params=["transformers", "llamacpp"])
def fair_server(request):
    """Both engines, each serving with shared passes (llama.cpp's default too)."""
    deal = DeAL(request.getfixturevalue("embedded_lm" if request.param == "transformers" else "embedded_llamacpp"),
                batching=True)
    with running_server(create_app(deal, limits=ServerLimits())) as url:
        _ordinary_round(url)  # warm-up
        yield url, _ordinary_round(url)[0]
    deadline = time.monotonic() + 120  # the hung-up hostile calls end at their next step: wait for the worker
    while deal.runner.busy:
        assert time.monotonic() < deadline, "a hostile call kept the model busy after its client left"
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.parametrize("kind", HOSTILE)
def test_one_hostile_request_does_not_slow_ordinary_ones_more_than_2x(fair_server, kind):
    url, solo = fair_server
    stop = threading.Event()
    attacker = threading.Thread(target=_hostile, args=(url, HOSTILE[kind], stop), daemon=True)
    attacker.start()
    time.sleep(0.5)  # admitted (the long prompt's prefill included) before the ordinary ones arrive
    try:
        shared, health = _ordinary_round(url)
    finally:
        stop.set()
        attacker.join(timeout=120)
    p95 = health[int(0.95 * (len(health) - 1))]
    print(f"{kind}: ordinary {shared:.2f}s (alone {solo:.2f}s, {shared / solo:.2f}x); /health p95 "
          f"{p95 * 1000:.0f} ms, max {health[-1] * 1000:.0f} ms over {len(health)} pings")
    assert shared <= 2 * solo, (kind, shared, solo)
    # p95 under 100 ms; the worst ping waits for the GIL behind one search step's Python work (client and server
    # share this process): measured up to 146 ms, so the ceiling for it is 500 ms
    assert p95 < 0.1 and health[-1] < 0.5, (kind, p95, health[-1])


@pytest.mark.slow
def test_a_chunked_5mb_body_is_refused(fair_server):
    url, _ = fair_server
    chunked = httpx.post(f"{url}/v1/chat/completions", timeout=30, headers={"content-type": "application/json"},
                         content=iter([json.dumps(ORDINARY).encode()[:-1], b" " * 5_000_000, b"}"]))
    assert chunked.status_code == 413
