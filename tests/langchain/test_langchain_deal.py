"""DeALLLM and ChatDeAL beyond the standard suite: rewards per call, caching, callbacks, guards. Real model."""

import asyncio

import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.globals import set_llm_cache
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import ConfigurableField, RunnableLambda

from deal_core.errors import ModelLoadError
from deal_core.rewards import Blocklist, Inoffensive, Keywords, Score
from langchain_deal import ChatDeAL, DeALLLM, RewardGuard, RewardGuardError, as_runnable

PROMPT = "Write a sentence using the words: kid, dance, room."

pytestmark = pytest.mark.slow  # the real embedded model, loaded by the wrappers themselves


@pytest.fixture
def llm():
    return DeALLLM(max_tokens=24)


@pytest.fixture
def chat():
    return ChatDeAL(max_tokens=24)


class Tokens(BaseCallbackHandler):
    def __init__(self):
        self.tokens = []

    def on_llm_new_token(self, token, **kwargs):
        self.tokens.append(token)


def test_construction_loads_nothing():
    lazy = ChatDeAL(model="/nonexistent/model/dir")
    assert lazy._deal is None
    with pytest.raises(ModelLoadError, match="model directory .* does not exist"):
        lazy.invoke("hi")


def test_instances_share_one_loaded_model(llm, chat):
    llm.invoke("Name a fruit.")
    chat.invoke("Name a fruit.")
    assert llm._decoder().lm is chat._decoder().lm


def test_llm_invoke_batch_stream_and_async(llm):
    single = llm.invoke("Name a fruit.")
    assert isinstance(single, str) and single
    batch = llm.batch(["Name a fruit.", "Name a colour."])
    assert batch[0] == single and batch[1]
    handler = Tokens()
    chunks = list(llm.stream("Name a fruit.", config={"callbacks": [handler]}))
    assert "".join(chunks) == single
    assert "".join(handler.tokens) == single and len(handler.tokens) > 1

    async def run():
        text = await llm.ainvoke("Name a fruit.")
        parts = [c async for c in llm.astream("Name a fruit.")]
        return text, "".join(parts)

    assert asyncio.run(run()) == (single, single)


def test_llm_stop_is_honoured_exactly(llm):
    full = llm.invoke("Count from one to ten in words.")
    stop = full.split()[2]
    cut = llm.invoke("Count from one to ten in words.", stop=[stop])
    assert stop not in cut and full.startswith(cut) and cut == full[: full.index(stop)]


def test_llm_generation_info_has_rewards_and_trace():
    llm = DeALLLM(max_tokens=12, rewards=[Keywords(["kid", "dance", "room"])], trace=True)
    info = llm.generate([PROMPT]).generations[0][0].generation_info
    assert set(info["rewards"]) == {"keywords"}
    assert info["stats"]["steps"] >= 1 and len(info["trace"]) == info["stats"]["steps"]


def test_bound_rewards_change_output_and_win_over_field(chat):
    plain = chat.invoke(PROMPT)
    blocked_word = plain.content.split()[1].strip(",.").lower()
    bound = chat.bind(rewards=[Blocklist([blocked_word], hard=True)])
    aligned = bound.invoke(PROMPT)
    assert blocked_word not in aligned.content.lower()
    field = ChatDeAL(max_tokens=24, rewards=[Keywords(["zebra"])])
    assert field.bind(rewards=[]).invoke(PROMPT).response_metadata["rewards"] == {}
    assert set(field.invoke(PROMPT).response_metadata["rewards"]) == {"keywords"}


def test_cache_key_includes_bound_rewards(chat):
    cache = InMemoryCache()
    set_llm_cache(cache)
    try:
        a = chat.bind(rewards=[Keywords(["kid", "dance", "room"])], reward_weight=5.0).invoke(PROMPT)
        b = chat.bind(rewards=[Blocklist(["kid", "dance", "room"], hard=True)]).invoke(PROMPT)
        assert len(cache._cache) == 2
        assert a.content != b.content
        again = chat.bind(rewards=[Keywords(["kid", "dance", "room"])], reward_weight=5.0).invoke(PROMPT)
        assert again.content == a.content
    finally:
        set_llm_cache(None)


def test_configurable_fields_do_not_reload(chat):
    configurable = chat.configurable_fields(
        reward_weight=ConfigurableField(id="reward_weight"), top_k=ConfigurableField(id="top_k"),
        lookahead=ConfigurableField(id="lookahead"))
    configurable = configurable.bind(rewards=[Keywords(["kid", "dance", "room"])])
    greedy = configurable.with_config(configurable={"top_k": 1, "reward_weight": 0.0}).invoke(PROMPT)
    aligned = configurable.with_config(configurable={"top_k": 8, "reward_weight": 5.0, "lookahead": 6}).invoke(PROMPT)
    assert greedy.response_metadata["stats"]["candidates_pruned"] == 0
    assert aligned.response_metadata["rewards"]["keywords"] >= greedy.response_metadata["rewards"]["keywords"]
    assert ChatDeAL(max_tokens=24)._decoder().lm is chat._decoder().lm


def test_unknown_call_argument_is_a_clear_error(chat):
    with pytest.raises(ValueError, match="unknown argument 'top_kk'"):
        chat.invoke("hi", top_kk=3)


def test_chat_metadata_and_usage(chat):
    msg = chat.bind(rewards=[Inoffensive()], trace=True).invoke([("system", "Be brief."), ("human", "Say hi")])
    usage = msg.usage_metadata
    assert usage["input_tokens"] > 5 and usage["output_tokens"] >= 1
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert msg.response_metadata["model_name"] == "SmolLM2-135M-Instruct"
    assert "inoffensive" in msg.response_metadata["rewards"] and msg.response_metadata["trace"]


def test_reward_is_a_chain_step(chat):
    prompt = ChatPromptTemplate.from_messages([("human", "{q}")])
    score = (prompt | chat | Inoffensive()).invoke({"q": "Say something kind."})
    assert isinstance(score, Score) and 0 <= score.total <= 1 and "inoffensive" in score.components
    combo = (prompt | chat | StrOutputParser() | as_runnable(0.5 * Inoffensive() + 0.5 * Keywords(["kind"])))
    result = combo.invoke({"q": "Say something kind."})
    assert set(result.components) == {"inoffensive", "keywords"}


def test_reward_guard_on_any_runnable():
    rude = RunnableLambda(lambda _: "You are a stupid idiot.")
    polite = RunnableLambda(lambda _: "Thank you, have a lovely day.")
    guard = RewardGuard(rude, Inoffensive(), threshold=0.5)
    with pytest.raises(RewardGuardError, match="threshold 0.5"):
        guard.invoke("x")
    assert RewardGuard(polite, Inoffensive(), threshold=0.5).invoke("x") == "Thank you, have a lovely day."
    assert RewardGuard(rude, Inoffensive(), 0.5, on_fail="fallback", fallback="[removed]").invoke("x") == "[removed]"

    answers = iter(["You are a stupid idiot.", "Thank you kindly."])
    flaky = RunnableLambda(lambda _: next(answers))
    assert RewardGuard(flaky, Inoffensive(), 0.5, on_fail="retry", max_retries=1).invoke("x") == "Thank you kindly."
    assert asyncio.run(RewardGuard(polite, Inoffensive(), 0.5).ainvoke("x")).startswith("Thank")
    with pytest.raises(ValueError, match="fallback"):
        RewardGuard(rude, Inoffensive(), 0.5, on_fail="fallback")


def test_reward_guard_attaches_score_to_chat_messages(chat):
    guarded = RewardGuard(chat.bind(rewards=[Inoffensive()]), Inoffensive(), threshold=0.2)
    msg = guarded.invoke("Say hello.")
    assert msg.response_metadata["reward_guard"]["total"] >= 0.2
