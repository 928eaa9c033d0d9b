"""One declaration per setting: `DeALConfig` declares every search setting once (default, bounds, meaning, scope,
names elsewhere); the wrappers' fields, the CLI options, the server's `deal` body and the scheduler's grouping key
are generated from it. These tests fail when any copy drifts."""

from __future__ import annotations

import typer

from deal_core.cli import app
from deal_core.config import CALL, SHARED, DeALConfig, setting_info, shared_settings, wrapper_names
from deal_core.params import DeALParams
from deal_core.search import SHARED as SEARCH_SHARED
from deal_core.search import shared_key
from deal_core.serving.limits import ServerLimits

SETTINGS = list(DeALConfig.model_fields)
CHANGED = {"top_k": 3, "lookahead": 2, "beam_width": 2, "commit": 2, "reward_weight": 1.0, "temperature": 0.5,
           "top_p": 0.5, "seed": 1, "repetition_penalty": 1.2, "no_repeat_ngram_size": 3, "prune": False,
           "reuse": False, "trace": True, "max_new_tokens": 5, "alignment_prompt": "Be kind.", "stop": ("x",),
           "timeout_s": 1.0, "truncate_prompt": True, "tool_result_weight": 0.0}


def _options(command: str) -> set[str]:
    click = typer.main.get_command(app).commands[command]
    return {opt for param in click.params for opt in param.opts}


def test_every_setting_declares_its_scope():
    assert {setting_info(n)["scope"] for n in SETTINGS} <= {SHARED, CALL}
    assert set(shared_settings()) == {n for n in SETTINGS if setting_info(n)["scope"] == SHARED}


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


def test_the_grouping_key_is_exactly_the_shared_settings():
    assert SEARCH_SHARED == shared_settings()
    base = DeALConfig()
    assert set(CHANGED) == set(SETTINGS), "add the new setting to CHANGED with a non-default value"
    for name, value in CHANGED.items():
        other = base.updated(**{name: value})
        assert (shared_key(other) != shared_key(base)) == (setting_info(name)["scope"] == SHARED), name


def test_the_server_takes_every_setting_in_its_deal_body(tiny_lm):
    from deal_core.rewards import RewardSum
    from deal_core.serving.protocol import ChatRequest, to_request

    limits = ServerLimits()
    for name, value in CHANGED.items():
        body = ChatRequest(messages=[{"role": "user", "content": "Hi"}], deal={name: value})
        request = to_request(body, body.messages, limits, RewardSum(), DeALConfig())
        assert name in request.settings, name
