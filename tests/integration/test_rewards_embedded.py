"""Rewards end to end with the embedded model."""

import json
import subprocess
import sys

import pytest
import torch

from deal_core import DeAL, load_model
from deal_core.rewards import Blocklist, Inoffensive, JsonSchema, Judge, Regex


@pytest.fixture(scope="module")
def deal(embedded_lm):
    return DeAL(embedded_lm, max_new_tokens=40)


def test_inoffensive_and_blocklist_avoid_words_greedy_uses(deal):
    prompt = "Describe your favourite animal in one sentence."
    greedy = deal.greedy(prompt).text
    assert "majestic" in greedy.lower()
    soft = deal.generate(prompt, rewards=Inoffensive() + Blocklist(["majestic"]), reward_weight=5.0)
    hard = deal.generate(prompt, rewards=Inoffensive() + Blocklist(["majestic"], hard=True))
    for result in (soft, hard):
        assert "majestic" not in result.text.lower()
        assert result.rewards["blocklist"] == 1.0 and result.rewards["inoffensive"] > 0.5
        assert not result.constraint_fallback


def test_judge_reuses_the_loaded_model_and_ranks_sensibly(embedded_lm):
    french = Judge(question="Is this response written in French?", reward_answer="yes")
    fr, en = french.score(["Say hi"] * 2, ["Bonjour, comment allez-vous aujourd'hui ?", "Hello, how are you today?"])
    assert fr > en
    polite = Judge(question="Is this response rude or insulting?", reward_answer="no")
    nice, rude = polite.score(["Say hi"] * 2, ["Hello! It is lovely to meet you.", "Shut up, you worthless idiot."])
    assert nice > rude
    assert load_model() is embedded_lm  # the judge used this very object: no second copy


def test_regex_reward_steers_the_format(deal):
    prompt = "What is 12 times 12? Answer with digits only."
    plain = deal.generate(prompt, max_new_tokens=8)
    result = deal.generate(prompt, rewards=Regex(r"\d+"), reward_weight=10.0, top_k=10, lookahead=2, max_new_tokens=8)
    assert Regex(r"\d+").score(prompt, plain.text) == [0.0]
    assert result.rewards["regex"] == 1.0 and result.text.strip().isdigit(), result.text


def test_json_schema_reward_keeps_json_valid(deal):
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"]}
    prompt = 'Return a JSON object with keys "name" and "age" for a 30 year old called Ann. Only JSON.'
    result = deal.generate(prompt, rewards=JsonSchema(schema), reward_weight=10.0, max_new_tokens=30)
    assert result.rewards["json_schema"] >= 0.5, result.text
    json.loads(result.text.strip().strip("`").removeprefix("json"))


def test_cli_with_learned_and_blocklist_rewards():
    proc = subprocess.run(
        [sys.executable, "-m", "deal_core.cli", "generate", "Describe your favourite animal in one sentence.",
         "--reward", "inoffensive:1", "--reward", "blocklist=majestic,lion:1", "--json", "--max-new-tokens", "40"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert set(payload["rewards"]) == {"inoffensive", "blocklist"}
    assert "majestic" not in payload["text"].lower()
    assert payload["reward_specs"][1] == {"name": "blocklist", "terms": ["majestic", "lion"], "hard": False,
                                          "weight": 1.0}


def test_judge_prefix_cache_is_exact(embedded_lm):
    """The judge keeps the KV cache of its prompt up to the response; scores equal encoding each prompt whole."""
    judge = Judge(question="Is this response rude or insulting?", reward_answer="no")
    prompts, texts = ["Say hi", "Say hi", "Greet me"], ["Hello! Lovely to meet you.", "Shut up, idiot.", "Hi."]
    first, again = judge.score(prompts, texts), judge.score(prompts, texts)
    assert len(judge._prefixes) == 2 and first == again
    yes, no = judge._answer_ids(embedded_lm)
    for prompt, text, value in zip(prompts, texts, first):
        head, tail = judge._split_prompt(embedded_lm, prompt)
        body = embedded_lm.tokenizer(f" {text}{tail}", add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            logp = torch.log_softmax(embedded_lm.prefill([head + body])[1][0].float(), -1)
        expected = 1 - torch.sigmoid(torch.logsumexp(logp[yes], -1) - torch.logsumexp(logp[no], -1))
        assert abs(value - float(expected)) < 1e-4
