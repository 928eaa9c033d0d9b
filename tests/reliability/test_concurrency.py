"""Many concurrent calls on one model: all complete, each equals the same call made alone, one copy of the
weights, no state leaking between calls; abandoned streams and cancelled tasks stop promptly."""

import asyncio
import ctypes
import gc
import time

import pytest

from deal_core.rewards import Blocklist, Keywords, Length
from langchain_deal import ChatDeAL
from llamaindex_deal import DeALLLM as LlamaDeAL

PROMPTS = ["Name a fruit.", "Say hi.", "Name a colour.", "Write a sentence using the words: dog, park."]
REWARDS = [[Keywords(["apple"])], [Length(max_words=4)], [Blocklist(["red"], hard=True)], [Keywords(["dog", "park"])]]


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def retained_mb() -> float:
    """RSS after a collection and after glibc hands freed heap back to the OS, so freed KV caches do not count."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    return rss_mb()


def calls(n):
    return [(PROMPTS[i % 4], REWARDS[(i // 4) % 4], ["."] if i % 3 == 0 else None) for i in range(n)]


@pytest.mark.slow
def test_32_concurrent_chat_calls_match_their_solo_runs(embedded_lm):
    chat = ChatDeAL(max_tokens=12, top_k=5, lookahead=5)
    plan = calls(32)
    solo = {}
    for prompt, rewards, stop in plan:
        key = (prompt, repr(rewards), repr(stop))
        if key not in solo:
            solo[key] = chat.invoke(prompt, rewards=rewards, stop=stop)
    before = retained_mb()

    async def run():
        return await asyncio.gather(*[chat.ainvoke(p, rewards=r, stop=s) for p, r, s in plan])

    start = time.perf_counter()
    results = asyncio.run(run())
    elapsed = time.perf_counter() - start
    after = retained_mb()
    assert len(results) == 32
    for (prompt, rewards, stop), message in zip(plan, results):
        alone = solo[(prompt, repr(rewards), repr(stop))]
        assert message.content == alone.content
        assert message.response_metadata["rewards"] == alone.response_metadata["rewards"]
        assert set(message.response_metadata["rewards"]) == {r.name for r in rewards}
        if stop:
            assert "." not in message.content
    print(f"32 concurrent ainvoke: {elapsed:.1f}s, RSS {before:.0f} MB -> {after:.0f} MB")
    # One copy of the weights: 32 calls keep at most their KV caches, never a second model. The bound is 3/4 of the
    # weights' size (measured growth: +148 MB alone, +292 MB inside the full suite before malloc_trim was used).
    weights_mb = sum(p.numel() * p.element_size() for p in embedded_lm.model.parameters()) / 2**20
    assert after - before < 0.75 * weights_mb, (before, after, weights_mb)


@pytest.mark.slow
def test_concurrent_llamaindex_acomplete(embedded_lm):
    llm = LlamaDeAL(max_tokens=10, top_k=3, lookahead=3)
    plan = calls(8)
    solo = [llm.complete(p, rewards=r).text for p, r, _ in plan]

    async def run():
        return await asyncio.gather(*[llm.acomplete(p, rewards=r) for p, r, _ in plan])

    assert [r.text for r in asyncio.run(run())] == solo


class CallCounter:
    """A reward that counts its calls: a search that keeps running keeps calling it."""

    def __init__(self):
        self.calls = 0

    def __call__(self, prompts, texts):
        self.calls += 1
        return [0.5] * len(texts)


def counted():
    from deal_core.rewards import FunctionReward

    counter = CallCounter()
    return counter, FunctionReward(counter, label="counter", bounds=(0, 1))


FAST = {"top_k": 3, "lookahead": 2, "prune": False}  # every step calls the reward; steps stay short


def wait_until_settled(counter: CallCounter, quiet: float = 0.6, limit: float = 10.0) -> float:
    """Seconds until the reward stops being called (no call for `quiet` seconds)."""
    start = time.perf_counter()
    last, since = counter.calls, time.perf_counter()
    while time.perf_counter() - start < limit:
        time.sleep(0.05)
        if counter.calls != last:
            last, since = counter.calls, time.perf_counter()
        elif time.perf_counter() - since >= quiet:
            return since - start
    raise AssertionError(f"the search kept running for {limit}s after it was abandoned")


def test_abandoned_stream_stops_and_next_call_is_unaffected(embedded_lm):
    chat = ChatDeAL(max_tokens=200)
    expected = chat.invoke("Count to five.", max_tokens=10).content
    counter, reward = counted()
    stream = chat.stream("Tell me a very long story about a dragon.", rewards=[reward], **FAST)
    for i, _ in enumerate(stream):
        if i == 2:
            break
    stream.close()
    assert wait_until_settled(counter) < 0.1  # a closed generator runs no further step
    calls = counter.calls
    time.sleep(0.5)
    assert counter.calls == calls
    assert chat.invoke("Count to five.", max_tokens=10).content == expected


def test_cancelled_task_stops_the_search_promptly(embedded_lm):
    chat = ChatDeAL(max_tokens=400)
    counter, reward = counted()

    async def run():
        task = asyncio.create_task(chat.ainvoke("Tell me a very long story about a dragon.", rewards=[reward],
                                                **FAST))
        while counter.calls < 3:
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return await asyncio.to_thread(wait_until_settled, counter)

    stopped_after = asyncio.run(run())
    assert stopped_after < 3.0  # at most the step in flight finishes
    calls = counter.calls
    time.sleep(0.5)
    assert counter.calls == calls
    assert asyncio.run(chat.ainvoke("Say hi.", max_tokens=5)).content
