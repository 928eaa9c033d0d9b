"""`Keywords` on the real embedded model, both engines: the plain count is gamed on the demo's own prompt (a quoted list
and a sentence about the words), the clean default is not, and the demo says which answers only list the words."""

import pytest

from deal_core import DeAL
from deal_core.bench import demo, quality
from deal_core.bench.data import commongen_prompt
from deal_core.rewards import Keywords

WORDS = ["dance", "kid", "room"]


def _check_clean_default_does_not_game(lm):
    deal = DeAL(lm, max_new_tokens=48)
    prompt = commongen_prompt(WORDS)
    plain = deal.generate(prompt, rewards=Keywords(WORDS, clean=False))
    clean = deal.generate(prompt, rewards=Keywords(WORDS))
    gamed, honest = quality.judge(WORDS, plain.text), quality.judge(WORDS, clean.text)
    # the plain count rewards every word anywhere: the search finds a list of the words, and it scores 1.0
    assert plain.rewards["keywords"] == 1.0 and gamed["all_concepts"] and gamed["degenerate"], plain.text
    assert not gamed["clean_all_concepts"] and Keywords(WORDS).score(prompt, plain.text)[0] < 1.0
    # the clean default: no list, no loop, no sentence about the words; what it reports is what the judge sees
    assert not honest["degenerate"] and not honest["meta"], clean.text
    assert clean.rewards["keywords"] == pytest.approx(honest["clean_coverage"]) and honest["clean_coverage"] > 0
    assert demo.flaw(gamed) and not demo.flaw(honest)


def test_clean_keywords_do_not_game_the_demo_prompt_on_transformers(embedded_lm):
    _check_clean_default_does_not_game(embedded_lm)


@pytest.mark.slow
def test_clean_keywords_do_not_game_the_demo_prompt_on_llamacpp(embedded_llamacpp):
    _check_clean_default_does_not_game(embedded_llamacpp)


@pytest.mark.slow
def test_the_demo_reports_clean_coverage_and_flags_listed_words(embedded_lm, tmp_path):
    report = demo.run(limit=2, max_new_tokens=24, json_out=str(tmp_path / "demo.json"))
    summary, rows = report["summary"], report["rows"]
    assert {"greedy_clean_hard", "deal_clean_hard", "greedy_degenerate", "deal_degenerate", "deal_meta"} <= set(summary)
    for row in rows:
        assert len(row["concepts"]) in (4, 5)  # the hard-dev split: greedy often misses a word there
        verdict = row["deal_judged"]
        assert verdict["clean_coverage"] <= verdict["coverage"] and not verdict["meta"], row["deal"]
        assert not demo.flaw(verdict) or not verdict["clean_all_concepts"]  # a flagged answer is never clean
