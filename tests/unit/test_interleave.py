"""Forward-level interleaving (deal_core/search/interleave.py): prompts sharing a search never wait for each other.

Each prompt's step yields the passes it needs; one pass feeds every waiting prompt. So prompts admitted together
take exactly as many passes as the busiest of them alone (lock-step took the sum of the per-step maxima), every
answer equals the prompt alone, a prompt dropped mid-step gives back its forks, and one prompt's failure leaves
the others' answers as they were.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import pytest

from deal_core.backends.table import TableBackend
from deal_core.config import make_config
from deal_core.errors import RewardError
from deal_core.prompts import EncodedPrompt
from deal_core.rewards import Reward, as_reward_sum
from deal_core.search import DeALSearch
from deal_core.search.selection import Selection

PROMPTS = ["The dog runs in the park", "a red ball", "the kid sits under the big tree and the blue sky", "sky"]
BUDGETS = [12, 5, 16, 9]
SETTINGS = [dict(top_k=4, lookahead=3), dict(top_k=3, lookahead=2, beam_width=2, commit=2),
            dict(top_k=5, lookahead=4, prune=False, reuse=False)]


class Boom(Reward):
    """Vowel share; raises (not a RewardError: a bug) for any text of a request that contains "boom"."""

    kind: ClassVar[str] = ""

    def _score(self, prompts: Sequence[str], texts: Sequence[str], is_final: Sequence[bool]) -> list[float]:
        if any("boom" in p for p in prompts):
            raise ValueError("boom")
        return [sum(c in "aeiou" for c in t) / max(len(t), 1) for t in texts]


@pytest.fixture(params=["table", "transformers", pytest.param("llamacpp", marks=pytest.mark.slow)])
def lm(request):
    """The reference table, the tiny random Llama on transformers, the embedded GGUF on llama.cpp."""
    if request.param == "table":
        return TableBackend()
    return request.getfixturevalue("tiny_lm" if request.param == "transformers" else "embedded_llamacpp")


def search_of(lm, prompts: list[str], budgets: list[int], reward, **settings):
    config = make_config(None, **settings)
    search = DeALSearch(lm, config)
    encoded = [EncodedPrompt(lm.encode_text(p), p) for p in prompts]
    configs = [make_config(config, max_new_tokens=b) for b in budgets]
    search.admit(encoded, configs, [as_reward_sum(reward)] * len(prompts), [None] * len(prompts))
    return search


def run(search: DeALSearch) -> dict:
    finished = {}
    while search.live:
        finished.update(search.step().finished)
    return finished


NOT_BATCH_INVARIANT = (
    "llama.cpp on the CPU is not batch-invariant once a sequence's KV cells are not contiguous (measured: bitwise "
    "equal for 4-8 steps, then up to 0.2 nats on chosen tokens; 6/12 CommonGen answers differ). Measured on this "
    "test: top_k=5, lookahead=4, prune=False, reuse=False gives other answers together than alone; the other two "
    "settings give the same answers")


@pytest.mark.parametrize("settings", SETTINGS)
def test_prompts_together_take_the_passes_of_the_busiest_alone(request, lm, vowels, settings):
    if request.node.callspec.id == "llamacpp-settings2":
        request.applymarker(pytest.mark.xfail(reason=NOT_BATCH_INVARIANT, strict=True))
    alone = []
    for prompt, budget in zip(PROMPTS, BUDGETS):
        search = search_of(lm, [prompt], [budget], vowels, **settings)
        done = run(search)
        alone.append((done[0].tokens, done[0].reason, search.stats.forward_passes, search.stats.steps))
    together = search_of(lm, PROMPTS, BUDGETS, vowels, **settings)
    done = run(together)
    assert [(done[i].tokens, done[i].reason) for i in range(len(PROMPTS))] == [a[:2] for a in alone]
    # one prefill for all, then every pass feeds whoever waits: the busiest prompt's own passes
    assert together.stats.forward_passes == 1 + max(passes - 1 for *_, passes, _ in alone)
    assert together.stats.steps == max(steps for *_, steps in alone)


def test_a_prompt_dropped_mid_step_gives_back_its_forks(vowels):
    lm = TableBackend()
    search = search_of(lm, PROMPTS[:2], [12, 12], vowels, top_k=4, lookahead=3, prune=False)
    forked = False
    while not forked:
        search.step()
        # a step under way holds forks beyond its prompt's rows
        forked = lm.held > len(search.rows)
    search.drop({0})
    assert 0 not in search.live
    done = run(search)
    assert lm.held == 0
    alone = run(search_of(TableBackend(), PROMPTS[1:2], [12], vowels, top_k=4, lookahead=3, prune=False))
    assert done[1].tokens == alone[0].tokens


def test_a_failing_prompt_leaves_the_others_answers_alone(lm, monkeypatch):
    """A reward that fails for one request fails that request only (its neighbours share the reward sum), and so
    does any other error in its step."""
    prompts = ["The dog runs in the park", "boom goes the ball", "a red ball"]
    search = search_of(lm, prompts, [10, 10, 10], Boom(), top_k=3, lookahead=2)
    done = run(search)
    assert set(done) == {0, 2} and isinstance(search.errors[1], RewardError)
    stopped = Selection.stopped

    def failing(selection, prompt, tokens, new):
        if prompt == 1 and len(tokens) > 3:
            raise RuntimeError("a bug in prompt 1's step")
        return stopped(selection, prompt, tokens, new)

    monkeypatch.setattr(Selection, "stopped", failing)
    search = search_of(lm, [p.replace("boom", "bam") for p in prompts], [10, 10, 10], Boom(), top_k=3, lookahead=2)
    later = run(search)
    assert set(later) == {0, 2} and isinstance(search.errors[1], RuntimeError)
    assert [later[i].tokens for i in (0, 2)] == [done[i].tokens for i in (0, 2)]
    for i in (0, 2):
        alone = run(search_of(lm, [prompts[i]], [10], Boom(), top_k=3, lookahead=2))
        assert done[i].tokens == alone[0].tokens
    if isinstance(lm, TableBackend):
        assert lm.held == 0


def test_a_prompt_admitted_mid_search_joins_the_next_pass(vowels):
    lm = TableBackend()
    search = search_of(lm, PROMPTS[:1], [12], vowels, top_k=4, lookahead=3)
    for _ in range(5):
        search.step()
    config = make_config(search.config, max_new_tokens=9)
    [late] = search.admit([EncodedPrompt(lm.encode_text(PROMPTS[3]), PROMPTS[3])], [config],
                          [as_reward_sum(vowels)], [None])
    passes = search.stats.forward_passes
    search.step()
    assert search.stats.forward_passes == passes + 1  # the newcomer rides the running prompt's pass
    done = run(search)
    alone = run(search_of(TableBackend(), PROMPTS[3:], [9], vowels, top_k=4, lookahead=3))
    assert done[late].tokens == alone[0].tokens
    assert lm.held == 0
