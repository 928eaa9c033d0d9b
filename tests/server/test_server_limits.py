"""Issue 22's regressions: one hostile request must not stall the server, and no limit can be walked around.

Every test runs a real uvicorn server on a loopback socket; the tiny random model keeps them fast (the fairness
test with the embedded model is in test_server_fairness.py)."""

from __future__ import annotations

import json
import threading
import time

import httpx
import pytest

from deal_core import DeAL
from deal_core.errors import RewardSpecError
from deal_core.rewards import rewards_from_json
from deal_core.serving import ServerLimits, create_app, running_server

HI = [{"role": "user", "content": "Hello there"}]


@pytest.fixture(scope="module")
def server(tiny_lm):
    limits = ServerLimits(max_tokens=32, max_prompt_tokens=64, timeout_s=30, max_request_bytes=50_000,
                          reward_models={"tiny-judge": "/nowhere/judge"})
    with running_server(create_app(DeAL(tiny_lm), limits=limits)) as url:
        yield url


def post(url: str, body: dict, **kwargs) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60, **kwargs)


def error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    return response.json()["error"]


# -- 1. patterns in request schemas are matched with a time limit ---------------------------------------------------

BACKTRACKING = [  # with Python's `re` (which jsonschema uses) each took minutes
    ({"type": "object", "properties": {"s": {"type": "string", "pattern": "^(a|aa)+$"}}}, '{"s": "%s!"}'),
    ({"type": "object", "patternProperties": {"^(a|aa)+$": {"type": "string"}}}, '{"%s!": 1}'),
    ({"type": "object", "patternProperties": {"^(a|aa)+$": {}}, "additionalProperties": False}, '{"%s!": 1}'),
]


@pytest.mark.parametrize(("schema", "text"), BACKTRACKING)
def test_a_backtracking_schema_pattern_ends_its_scoring_call_in_time(schema, text):
    from deal_core.errors import RewardError
    from deal_core.rewards import JsonSchema

    start = time.perf_counter()
    try:
        JsonSchema(json_schema=schema).score("p", [text % ("a" * 60)])
    except RewardError as exc:
        assert "took over" in str(exc)
    assert time.perf_counter() - start < 10  # budget 0.5 s; the unguarded match ran for minutes


def test_schema_patterns_still_match():
    from deal_core.rewards import JsonSchema

    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": "^ab+$"}},
              "patternProperties": {"^x_": {"type": "integer"}}, "additionalProperties": False}
    reward = JsonSchema(json_schema=schema)
    assert reward.score("p", ['{"s": "abb", "x_1": 2}', '{"s": "ac"}', '{"x_1": "no"}', '{"y": 1}']) == \
        [1.0, 0.5, 0.5, 0.5]
    with pytest.raises(RewardSpecError, match="unevaluatedProperties"):
        rewards_from_json([{"name": "json_schema", "json_schema": {
            "patternProperties": {"a": {}}, "unevaluatedProperties": False}}])


def test_a_backtracking_pattern_in_a_request_does_not_stall_health_or_others(server):
    spec = {"name": "json_schema", "json_schema": BACKTRACKING[0][0]}
    body = {"messages": HI, "max_tokens": 8, "deal": {"rewards": [spec]}}
    hostile = threading.Thread(target=post, args=(server, body), daemon=True)
    hostile.start()
    start = time.perf_counter()
    assert httpx.get(f"{server}/health", timeout=5).status_code == 200
    ordinary = post(server, {"messages": HI, "max_tokens": 4})
    assert ordinary.status_code == 200 and time.perf_counter() - start < 30
    hostile.join(timeout=30)
    assert not hostile.is_alive()


# -- 2./3. settings and budgets within the operator's limits, wherever they come from -------------------------------

@pytest.mark.parametrize(("deal", "extra", "needle", "param"), [
    ({"top_k": 200}, {}, "max_top_k", "deal.top_k"),
    ({"lookahead": 128}, {}, "max_lookahead", "deal.lookahead"),
    ({"beam_width": 64}, {}, "max_beam_width", "deal.beam_width"),
    ({"reward_weight": 1e6}, {}, "max_reward_weight", "deal.reward_weight"),
    ({"top_k": 20, "lookahead": 16, "beam_width": 2}, {}, "max_step_tokens", "deal"),
    ({"timeout_s": 3600}, {}, "timeout_s", "deal.timeout_s"),
    ({"max_new_tokens": 33}, {}, "limit of 32", "deal.max_new_tokens"),
    ({}, {"max_completion_tokens": 33}, "limit of 32", "max_completion_tokens"),
    ({}, {"max_tokens": 9000}, "limit of 32", "max_tokens"),
    ({"max_new_tokens": 9000}, {}, "limit of 32", "deal.max_new_tokens"),  # reached the context check before
    ({"max_new_tokens": 8}, {"max_tokens": 4}, "contradicts", "deal.max_new_tokens"),
])
def test_settings_over_a_limit_are_a_400_naming_it(server, deal, extra, needle, param):
    err = error(post(server, {"messages": HI, "deal": deal, **extra}), 400)
    assert needle in err["message"] and err["param"] == param, err


def test_the_budget_comes_from_deal_max_new_tokens_too(server):
    reply = post(server, {"messages": HI, "deal": {"max_new_tokens": 3}}).json()
    assert reply["usage"]["completion_tokens"] <= 3


def test_kv_footprint_is_limited(tiny_lm):
    limits = ServerLimits(max_kv_tokens=200)
    with running_server(create_app(DeAL(tiny_lm), limits=limits)) as url:
        err = error(post(url, {"messages": HI, "max_tokens": 16, "deal": {"top_k": 10}}), 400)
        assert "max_kv_tokens" in err["message"]
        assert post(url, {"messages": HI, "max_tokens": 4, "deal": {"top_k": 2, "lookahead": 2}}).status_code == 200


# -- 4. the body limit counts bytes received -------------------------------------------------------------------------

def test_a_chunked_body_without_content_length_is_held_to_the_limit(server):
    piece = json.dumps({"messages": [{"role": "user", "content": "x" * 1000}] * 200}).encode()

    def chunks():
        for i in range(0, len(piece), 4096):
            yield piece[i:i + 4096]

    response = httpx.post(f"{server}/v1/chat/completions", content=chunks(), timeout=30,
                          headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers
    assert "50000 bytes" in error(response, 413)["message"]
    small = json.dumps({"messages": HI, "max_tokens": 2}).encode()
    response = httpx.post(f"{server}/v1/chat/completions", content=iter([small[:10], small[10:]]), timeout=30,
                          headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text


# -- 5. a client that leaves a non-streamed request stops its search -------------------------------------------------

def test_a_dropped_non_streaming_request_stops_its_search(tiny_lm, monkeypatch):
    deal, steps = DeAL(tiny_lm), []
    step = tiny_lm.step

    def slow_step(*args):  # a whole answer takes seconds, so a search left running shows in the count
        steps.append(1)
        time.sleep(0.03)
        return step(*args)

    monkeypatch.setattr(tiny_lm, "step", slow_step)
    settings = {"max_new_tokens": 64, "top_k": 8, "lookahead": 8}
    deal.generate("Hello there", **settings)
    full, steps[:] = len(steps), []
    with running_server(create_app(deal, limits=ServerLimits(max_tokens=64))) as url:
        body = {"messages": HI, "max_tokens": 64, "deal": {"top_k": 8, "lookahead": 8}}
        with pytest.raises(httpx.TimeoutException):
            httpx.post(f"{url}/v1/chat/completions", json=body, timeout=0.5)
        deadline = time.monotonic() + 20
        while not tiny_lm.lock.acquire(timeout=0.1):
            assert time.monotonic() < deadline, "the dropped request kept the model busy"
        tiny_lm.lock.release()
        time.sleep(0.5)
    assert len(steps) < full / 2, (len(steps), full)  # it ran to the end before: every step of the answer


# -- 6. prompt tokens and wall-clock time are limited ---------------------------------------------------------------

def test_a_long_prompt_is_a_400_or_keeps_its_last_tokens(server):
    long = [{"role": "user", "content": "word " * 120}]  # over the 64-token limit, within the window
    err = error(post(server, {"messages": long, "max_tokens": 2}), 400)
    assert err["code"] == "context_length_exceeded" and "limit of 64 prompt tokens" in err["message"]
    reply = post(server, {"messages": long, "max_tokens": 2, "deal": {"truncate_prompt": True}}).json()
    assert 0 < reply["usage"]["prompt_tokens"] <= 64


def test_the_server_time_limit_ends_a_request_with_a_408(tiny_lm):
    with running_server(create_app(DeAL(tiny_lm), limits=ServerLimits(timeout_s=0.3, max_tokens=200))) as url:
        start = time.perf_counter()
        err = error(post(url, {"messages": HI, "max_tokens": 200, "deal": {"top_k": 16, "lookahead": 16}}), 408)
        assert err["code"] == "request_timeout" and time.perf_counter() - start < 10
        stream = {"messages": HI, "max_tokens": 200, "stream": True, "deal": {"top_k": 16, "lookahead": 16}}
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=stream, timeout=30) as response:
            events = [line for line in response.iter_lines() if line.startswith("data: ")]
        assert json.loads(events[-1][6:])["error"]["code"] == "request_timeout"


# -- 8. API key and CORS --------------------------------------------------------------------------------------------

def test_api_key_and_cors(tiny_lm):
    import openai

    limits = ServerLimits(api_key="s3cret", cors_origins=("https://app.example",))
    with running_server(create_app(DeAL(tiny_lm), limits=limits)) as url:
        for headers in ({}, {"Authorization": "Bearer WRONG"}, {"Authorization": "Basic s3cret"}):
            err = error(post(url, {"messages": HI, "max_tokens": 2}, headers=headers), 401)
            assert err["code"] == "invalid_api_key"
        assert httpx.get(f"{url}/health").status_code == 200  # probes need no key
        api = openai.OpenAI(base_url=f"{url}/v1", api_key="s3cret", max_retries=0)
        assert api.chat.completions.create(model="", messages=HI, max_tokens=2).choices
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{url}/v1", api_key="nope", max_retries=0).models.list()
        allowed = httpx.options(f"{url}/v1/chat/completions", headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
        assert allowed.headers.get("access-control-allow-origin") == "https://app.example"
    with running_server(create_app(DeAL(tiny_lm))) as url:  # CORS is off unless asked for
        response = httpx.get(f"{url}/v1/models", headers={"Origin": "https://app.example"})
        assert response.status_code == 200 and "access-control-allow-origin" not in response.headers


# -- 10. models in request reward specs are names the operator chose -----------------------------------------------

@pytest.mark.parametrize("spec", [
    {"name": "judge", "model": "/tmp"},
    {"name": "reward_model", "model": "/etc"},
    {"name": "reward_model", "model": "/no/such/dir"},  # used to say whether the path exists
    {"name": "reward_model"},
])
def test_request_reward_specs_cannot_name_model_paths(server, spec):
    err = error(post(server, {"messages": HI, "max_tokens": 2, "deal": {"rewards": [spec]}}), 400)
    assert "not a model this server offers" in err["message"] and "tiny-judge" in err["message"]
    assert "exist" not in err["message"]


def test_an_offered_model_name_maps_to_the_operators_path():
    [term] = rewards_from_json([{"name": "judge", "model": "small"}], models={"small": "/models/judge"}).terms
    assert term.reward.model == "/models/judge"
    [term] = rewards_from_json([{"name": "judge"}], models={}).terms  # no model: the served one's default
    assert term.reward.model is None


# -- 9./11. CLI errors ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "needle"), [
    (["batch", "IN", "/proc/x/y.jsonl", "--max-new-tokens", "2"], "cannot write the output '/proc/x/y.jsonl'"),
    (["generate", "hi", "--stop", ""], "stop strings must be non-empty"),
    (["serve", "--max-top-k", "0"], "max_top_k"),
    (["serve", "--reward-model", "judge"], "is not NAME=VALUE"),
])
def test_cli_errors_are_one_line(args, needle, tmp_path, capsys):
    from deal_core.cli import main

    rows = tmp_path / "in.jsonl"
    rows.write_text('{"id": 1, "prompt": "hi"}\n')
    with pytest.raises(SystemExit) as exit_:
        main([str(rows) if a == "IN" else a for a in args])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1 and needle in err, err


def test_a_backtracking_pattern_in_response_format_or_a_tool_is_compiled_in_linear_time(server):
    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": "^(a|aa)+$"}}, "required": ["s"]}
    start = time.perf_counter()
    fmt = post(server, {"messages": HI, "max_tokens": 24,
                        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}})
    tool = post(server, {"messages": HI, "max_tokens": 24, "tool_choice": "f",
                         "tools": [{"type": "function", "function": {"name": "f", "parameters": schema}}]})
    assert time.perf_counter() - start < 30
    for response in (fmt, tool):
        assert response.status_code in (200, 400), response.text  # an answer, or a typed budget error
