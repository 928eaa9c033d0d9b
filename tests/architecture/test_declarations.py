"""One declaration per setting: `DeALConfig` declares every search setting once (default, bounds, meaning, scope,
names elsewhere); the wrappers' fields, the CLI options, the server's `deal` body and the scheduler's grouping key
are generated from it. These tests fail when any copy drifts."""

from __future__ import annotations

import typer

from deal_core.cli import app
from deal_core.config import CALL, SHARED, DeALConfig, setting_info, shared_settings, wrapper_names
from deal_core.params import DeALParams
from deal_core.serving.limits import ServerLimits

SETTINGS = list(DeALConfig.model_fields)
CHANGED = {"top_k": 3, "lookahead": 2, "beam_width": 2, "commit": 2, "reward_weight": 1.0, "temperature": 0.5,
           "top_p": 0.5, "seed": 1, "repetition_penalty": 1.2, "no_repeat_ngram_size": 3, "prune": False,
           "reuse": False, "trace": True, "max_new_tokens": 5, "alignment_prompt": "Be kind.", "stop": ("x",),
           "timeout_s": 1.0, "truncate_prompt": True, "tool_result_weight": 0.0}


def _options(command: str) -> set[str]:
    click = typer.main.get_command(app).commands[command]
    return {opt for param in click.params for opt in param.opts}


def _answers(search_config: DeALConfig, prompt_configs: list[DeALConfig]) -> list[list[int]]:
    """The tokens each prompt gets in one search (the table backend, a vowel-share reward)."""
    from deal_core.backends.table import TableBackend
    from deal_core.prompts import EncodedPrompt
    from deal_core.rewards import as_reward_sum
    from deal_core.search import DeALSearch
    from tests.conftest import VowelShare

    lm = TableBackend()
    search = DeALSearch(lm, search_config)
    texts = ["The dog runs in the park", "a red ball under the blue sky"][: len(prompt_configs)]
    search.admit([EncodedPrompt(lm.encode_text(t), t) for t in texts], prompt_configs,
                 [as_reward_sum(VowelShare())] * len(texts), [None] * len(texts))
    finished = {}
    while search.live:
        finished.update(search.step().finished)
    return [finished[i].tokens for i in range(len(texts))]


def test_every_setting_declares_its_scope():
    assert {setting_info(n)["scope"] for n in SETTINGS} <= {SHARED, CALL}
    assert shared_settings() and len(shared_settings()) < len(SETTINGS)  # both scopes are in use


def test_a_search_never_reads_a_per_call_setting_from_its_own_config():
    """What CALL means: prompts that differ in the setting may share one search, so the search must take it from
    each prompt's own config. Changed on the search's config only, a CALL setting leaves every answer as it is;
    changed on one prompt only, that prompt gets the answer it gets alone with it. (A SHARED setting, by contrast,
    is read from the search's config: changing top_k there changes the answers.)"""
    base = DeALConfig(top_k=3, lookahead=2, max_new_tokens=10)
    plain = _answers(base, [base, base])
    for name in (n for n in SETTINGS if setting_info(n)["scope"] == CALL):
        assert _answers(base.updated(**{name: CHANGED[name]}), [base, base]) == plain, name
    for name, value in {"max_new_tokens": 4, "stop": ("e",)}.items():  # the per-call settings the search applies
        changed = base.updated(**{name: value})
        [alone] = _answers(base, [changed])
        assert alone != plain[0], name  # the change shows
        assert _answers(base, [changed, base]) == [alone, plain[1]], name
    assert _answers(base.updated(top_k=1), [base, base]) != plain


def test_wrapper_fields_are_the_settings_under_their_wrapper_names():
    for name, wrapper in wrapper_names().items():
        field = DeALParams.model_fields[wrapper]
        assert field.default is None and field.description == DeALConfig.model_fields[name].description, name
    own = {"model", "engine", "device", "dtype", "rewards", "use_chat_template"}
    assert set(DeALParams.model_fields) == own | set(wrapper_names().values())


def test_cli_options_are_generated_for_every_setting():
    for command in ("generate", "batch"):
        assert {setting_info(n)["cli"] for n in SETTINGS} <= _options(command), command
    from deal_core.bench.tasks import TUNABLE, TUNABLE_SETTINGS

    assert {setting_info(n)["cli"] for n in TUNABLE_SETTINGS} <= _options("bench")
    assert set().union(*TUNABLE.values()) <= set(TUNABLE_SETTINGS)


def test_serve_options_are_generated_for_every_limit():
    from deal_core.cli.options import cli_name

    assert {cli_name(n, f) for n, f in ServerLimits.model_fields.items()} <= _options("serve")


def test_the_scheduler_groups_calls_by_exactly_the_shared_settings():
    """The key the engine groups calls by (`scheduler.search_key`) changes with every SHARED setting and with no
    CALL setting: calls differing only in a CALL setting share a search."""
    from types import SimpleNamespace

    from deal_core.prompts import EncodedPrompt
    from deal_core.rewards import RewardSum
    from deal_core.scheduler import search_key

    def key(config: DeALConfig) -> tuple:
        prepared = SimpleNamespace(config=config, encoded=[EncodedPrompt([1, 2, 3], "hi")], rewards=RewardSum())
        return search_key(prepared, call=0)

    base = DeALConfig()
    assert set(CHANGED) == set(SETTINGS), "add the new setting to CHANGED with a non-default value"
    for name, value in CHANGED.items():
        other = base.updated(**{name: value})
        assert (key(other) != key(base)) == (setting_info(name)["scope"] == SHARED), name


def test_the_server_takes_every_setting_in_its_deal_body(tiny_lm):
    from deal_core.rewards import RewardSum
    from deal_core.serving.protocol import ChatRequest, to_request

    limits = ServerLimits()
    for name, value in CHANGED.items():
        body = ChatRequest(messages=[{"role": "user", "content": "Hi"}], deal={name: value})
        request = to_request(body, body.messages, limits, RewardSum(), DeALConfig())
        assert name in request.settings, name
