"""Hostile prompts and settings get a typed error that says what to change (issue 13), on the tiny model."""

import asyncio

import pytest
from transformers import AutoTokenizer

from deal_core import ConfigError, DeAL, PromptError, RewardError
from deal_core.model import LanguageModel, embedded_model_dir


@pytest.mark.parametrize(
    ("prompt", "needle"),
    [
        (None, "prompt must be a string or a list of chat messages, got NoneType"),
        (42, "prompt must be a string or a list of chat messages, got int"),
        (b"Hi", "got bytes"),
        ({"role": "user", "content": "Hi"}, r"single chat message: pass a list of messages"),
        ([{"role": "user", "content": 42}], "message 0 content must be a string"),
        ([{"role": "user", "content": {"text": "Hi"}}], "message 0 content must be a string"),
        ([{"role": "user", "content": [{"type": "text", "text": 5}]}], "message 0 content must be a string"),
        ([{"role": None, "content": "Hi"}], "message 0 role must be a non-empty string"),
        ("Hi \ud800 there", r"prompt contains a lone surrogate '\\ud800' at index 3"),
        ([{"role": "user", "content": "Hi \udfff"}], "message 0 content contains a lone surrogate"),
        ([{"role": "assistant", "content": None}], "no message with text"),
    ],
)
def test_bad_prompts_are_prompt_errors(tiny, prompt, needle):
    with pytest.raises(PromptError, match=needle):
        tiny.generate(prompt)


def test_none_content_is_empty_like_an_openai_tool_call_message(tiny):
    tool_call = {"role": "assistant", "content": None,
                 "tool_calls": [{"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
    history = [{"role": "user", "content": "What is 6 x 7?"}, tool_call, {"role": "tool", "content": "42"}]
    assert tiny.generate(history, max_new_tokens=3).token_ids
    # a trailing assistant message with null content is an empty prefill: the same ids as a plain generation prompt
    empty_prefill = tiny.generate([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": None}])
    assert empty_prefill.token_ids == tiny.generate("Hi").token_ids


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"seed": 2**70}, "seed"),
        ({"seed": -1}, "seed"),
        ({"stop": ["ok", "\ud800"]}, "a stop string contains a lone surrogate"),
        ({"alignment_prompt": "Be kind \udc00"}, "alignment_prompt contains a lone surrogate"),
        ({"top_k": 10**5000}, "top_k .got <an integer of 16610 bits>."),
    ],
)
def test_bad_settings_are_config_errors(tiny, settings, needle):
    with pytest.raises(ConfigError, match=needle):
        tiny.generate("Hi", sample=True, **settings)


def test_largest_seed_is_accepted_and_error_messages_stay_short(tiny):
    assert tiny.generate("Hi", sample=True, seed=2**64 - 1, max_new_tokens=2).token_ids
    with pytest.raises(ConfigError) as info:
        tiny.generate("Hi", alignment_prompt="x" * 100_000 + "\ud800")
    assert len(str(info.value)) < 400


@pytest.mark.parametrize("prompts", ["Hi", b"Hi", {"role": "user", "content": "Hi"}, None, 3])
def test_batch_calls_reject_a_bare_prompt(tiny, prompts):
    with pytest.raises(PromptError, match="a batch call takes a list of prompts"):
        tiny.generate_batch(prompts)
    with pytest.raises(PromptError, match="a batch call takes a list of prompts"):
        asyncio.run(tiny.agenerate_batch(prompts))


def test_a_chat_template_that_rejects_messages_is_a_prompt_error(tiny_lm):
    strict = AutoTokenizer.from_pretrained(embedded_model_dir())
    strict.chat_template = "{{ raise_exception('roles must alternate user/assistant') }}"
    deal = DeAL(LanguageModel(model=tiny_lm.model, tokenizer=strict, name="strict"), max_new_tokens=2)
    with pytest.raises(PromptError, match="chat template rejected the messages: roles must alternate"):
        deal.generate("Hi")


# -- the request model as a hostile caller sees it (review findings) ----------------------------------------------
def test_hostile_requests_get_typed_errors(tiny):
    from deal_core.request import Request

    user = {"role": "user", "content": "Hi"}
    cases = [
        ([user, {"role": "assistant", "content": None, "tool_calls": 5}], PromptError, "tool_calls must be a list"),
        ([user, {"role": "assistant", "tool_calls": [{"function": None}]}], PromptError, "needs a function name"),
        ([user, {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "[" * 100000}}]}],
         PromptError, "readable JSON"),
        ([user, {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": '{"a": "\\ud800"}'}}]}],
         PromptError, "surrogate"),
        ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}], PromptError, "image_url"),
        ([{"role": "wizard", "content": "Hi"}], PromptError, "not one of"),
        ([{"role": "tool", "content": "1", "tool_call_id": 7}, user], PromptError, "tool_call_id must be a string"),
    ]
    for prompt, error, message in cases:
        with pytest.raises(error, match=message):
            Request.of(prompt)
    for settings, message in [({"base": 1}, "unknown setting"), ({"prompt": "x"}, "unknown setting"),
                              ({"temperature": 1e-300}, "too small"), ({"stop": ["x"] * 17}, "at most 16"),
                              ({"stop": ["x" * 300]}, "256 characters"),
                              ({"sample": True, "temperature": 0}, "contradicts")]:
        with pytest.raises(ConfigError, match=message):  # as a server would pass them: a dict from JSON
            tiny.generate(Request.of("Hi", **settings))
    with pytest.raises(PromptError, match="needs tools"):  # a real field now, checked against the tools
        Request.of("Hi", tool_choice="required")
    history = [user, {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f"}}]}, user]
    from deal_core.prompts import encode_prompt

    plain = encode_prompt(tiny.lm, history, use_chat_template=False)  # never dropped silently: written out as text
    assert '<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>' in tiny.lm.decode(plain.ids)


def test_batches_compare_resolved_settings(tiny):
    from deal_core.request import Request

    results = tiny.generate_batch([Request.of("Hi", stop=["x"]), Request.of("Yo", stop=("x",))], max_new_tokens=3)
    assert len(results) == 2
    with pytest.raises(ConfigError, match="share their settings"):
        tiny.generate_batch([Request.of("Hi", top_k=2), Request.of("Yo", top_k=3)])


def test_sampling_still_works_through_the_old_switch_and_small_temperatures(tiny, vowels):
    a = tiny.generate("Hi", rewards=vowels, sample=True, seed=1, max_new_tokens=6)
    b = tiny.generate("Hi", rewards=vowels, temperature=1.0, seed=1, max_new_tokens=6)
    assert a.token_ids == b.token_ids
    assert tiny.generate("Hi", rewards=vowels, temperature=0.01, seed=1, max_new_tokens=6).token_ids


def test_a_hostile_pattern_under_a_call_timeout_is_a_timeout(tiny):
    import time

    from deal_core import GenerationTimeout
    from deal_core.rewards import Regex

    start = time.perf_counter()
    with pytest.raises((GenerationTimeout, RewardError)):
        tiny.generate("Say something.", rewards=Regex("(?s)(.|.|.)+(?=\x00)", mode="search"), timeout_s=0.2,
                      max_new_tokens=16)
    assert time.perf_counter() - start < 5
