"""Hostile inputs at the LangChain wrappers (issue 13): string `stop`, constructor arguments, message contents.
Fast tests run on the tiny random model; the last one checks the real embedded model."""

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import HumanMessage

from deal_core import ConfigError, DeAL, PromptError
from langchain_deal import ChatDeAL, DeALLLM

PROMPT = "Hello there"
OPENAI_TOOL_CALL_HISTORY = [
    {"role": "user", "content": "What is 6 times 7?"},
    {"role": "assistant", "content": None,
     "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "mul", "arguments": '{"a": 6, "b": 7}'}}]},
    {"role": "tool", "content": "42", "tool_call_id": "c1"},
]


def on_tiny(wrapper, tiny_lm):
    wrapper._deal = DeAL(tiny_lm)  # the decoder a wrapper would load on first use, swapped for the tiny model
    return wrapper


def multi_char_stop(text: str) -> str:
    """A word of `text` whose characters also occur before it: split into characters, it would cut too early."""
    return next(w for w in text.split()[1:] if len(w) > 1 and any(c in text[: text.index(w)] for c in w))


class Tokens(BaseCallbackHandler):
    def __init__(self):
        self.tokens = []

    def on_llm_new_token(self, token, **kwargs):
        self.tokens.append(token)


def test_a_string_stop_is_one_stop_string(tiny_lm):
    chat = on_tiny(ChatDeAL(max_tokens=24), tiny_lm)
    full = chat.invoke(PROMPT).content
    stop = multi_char_stop(full)
    expected = full[: full.index(stop)]
    assert chat.invoke(PROMPT, stop=stop).content == expected
    assert chat.invoke(PROMPT, stop=[stop]).content == expected
    assert chat.bind(stop=stop).invoke(PROMPT).content == expected
    assert "".join(c.content for c in chat.stream(PROMPT, stop=stop)) == expected
    assert on_tiny(ChatDeAL(max_tokens=24, stop=stop), tiny_lm).invoke(PROMPT).content == expected
    assert chat._get_ls_params(stop=stop)["ls_stop"] == [stop]

    llm = on_tiny(DeALLLM(max_tokens=24), tiny_lm)
    full = llm.invoke(PROMPT)
    stop = multi_char_stop(full)
    assert llm.invoke(PROMPT, stop=stop) == llm.batch([PROMPT], stop=stop)[0] == full[: full.index(stop)]


@pytest.mark.parametrize("cls", [ChatDeAL, DeALLLM])
def test_constructor_arguments_are_checked(cls, tiny_lm):
    with pytest.raises(ConfigError, match=r"unknown argument 'top_kk' \(did you mean 'top_k'\?\)"):
        cls(top_kk=1)
    with pytest.raises(ConfigError, match="top_k"):
        cls(top_k=0)  # out of DeALConfig's bounds: raised now, not at the first call
    with pytest.raises(ConfigError, match="top_k .got 'many'."):
        cls(top_k="many")  # a ConfigError, not pydantic's ValidationError
    with pytest.raises(ConfigError, match="not both"):
        cls(max_tokens=3, max_new_tokens=4)
    short = on_tiny(cls(max_new_tokens=3), tiny_lm)
    assert short.max_tokens == 3
    output = short.invoke(PROMPT)
    assert len(tiny_lm.tokenizer(getattr(output, "content", output))["input_ids"]) <= 3


@pytest.mark.parametrize("cls", [ChatDeAL, DeALLLM])
def test_langchain_own_constructor_fields_keep_working(cls, tiny_lm):
    handler = Tokens()
    model = on_tiny(cls(max_tokens=4, callbacks=[handler], tags=["t"], metadata={"k": "v"}, cache=False,
                        verbose=False, name="guarded", custom_get_token_ids=None), tiny_lm)
    assert model.tags == ["t"] and model.metadata == {"k": "v"} and model.name == "guarded"
    assert model.invoke(PROMPT)
    assert list(model.stream(PROMPT)) and handler.tokens


def test_chat_streaming_flag_and_rate_limiter_fields(tiny_lm):
    from langchain_core.rate_limiters import InMemoryRateLimiter

    handler = Tokens()
    chat = on_tiny(ChatDeAL(max_tokens=6, streaming=True, disable_streaming=False,
                            rate_limiter=InMemoryRateLimiter(requests_per_second=1000), api_key="unused"), tiny_lm)
    reply = chat.invoke(PROMPT, config={"callbacks": [handler]})
    assert len(handler.tokens) > 1 and "".join(handler.tokens) == reply.content  # invoke ran through _stream
    assert "unused" not in repr(chat)


def test_message_contents(tiny_lm):
    chat = on_tiny(ChatDeAL(max_tokens=4), tiny_lm)
    assert chat.invoke(OPENAI_TOOL_CALL_HISTORY).usage_metadata["output_tokens"] >= 1
    with pytest.raises(PromptError, match="lone surrogate"):
        chat.invoke([HumanMessage("Hi \ud800")])
    with pytest.raises(PromptError, match="lone surrogate"):
        on_tiny(DeALLLM(max_tokens=4), tiny_lm).invoke("Hi \ud800")
    with pytest.raises(ConfigError, match="seed"):
        chat.invoke(PROMPT, temperature=0.7, seed=2**70)


@pytest.mark.slow
def test_real_model_string_stop_and_null_content_message():
    chat = ChatDeAL(max_tokens=24)
    question = "Count from one to ten in words."
    full = chat.invoke(question).content
    stop = multi_char_stop(full)
    cut = chat.invoke(question, stop=stop)
    assert cut.content == full[: full.index(stop)] and cut.response_metadata["finish_reason"] == "stop"
    answer = chat.invoke(OPENAI_TOOL_CALL_HISTORY).content
    assert answer.strip()


def test_the_older_sample_switch_still_reaches_the_search(tiny_lm):
    from langchain_deal import ChatDeAL

    chat = ChatDeAL(max_tokens=5, top_k=3, lookahead=1)
    chat._deal = DeAL(tiny_lm)
    sampled = chat.invoke("Hello there", sample=True, seed=2)
    assert sampled.response_metadata["finish_reason"] in ("length", "eos", "stop")
    assert sampled.content == chat.invoke("Hello there", temperature=1.0, seed=2).content


def test_repetition_settings_and_fluency_reach_the_search(tiny_lm):
    from deal_core.rewards import Fluency, Keywords

    chat = on_tiny(ChatDeAL(max_tokens=12, top_k=4, lookahead=2, no_repeat_ngram_size=2, repetition_penalty=1.3,
                            rewards=[Keywords(["the"]), Fluency()]), tiny_lm)
    message = chat.invoke(PROMPT)
    expected = DeAL(tiny_lm).generate(PROMPT, rewards=Keywords(["the"]) + Fluency(), max_new_tokens=12, top_k=4,
                                      lookahead=2, no_repeat_ngram_size=2, repetition_penalty=1.3)
    assert message.content == expected.text
    assert message.response_metadata["rewards"] == pytest.approx(expected.rewards)
    assert chat.invoke(PROMPT, no_repeat_ngram_size=0, repetition_penalty=1.0).content == DeAL(tiny_lm).generate(
        PROMPT, rewards=Keywords(["the"]) + Fluency(), max_new_tokens=12, top_k=4, lookahead=2).text
    with pytest.raises(ConfigError, match="no_repeat_ngram_size"):
        ChatDeAL(no_repeat_ngram_size=-2)
