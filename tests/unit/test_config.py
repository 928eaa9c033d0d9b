import pytest

from deal_core import ConfigError, DeALConfig, make_config


def test_defaults_match_documentation():
    cfg = DeALConfig()
    assert (cfg.top_k, cfg.lookahead, cfg.beam_width, cfg.commit, cfg.reward_weight, cfg.max_new_tokens) == (
        10, 8, 1, 1, 3.0, 128)
    assert cfg.prune and not cfg.sample and cfg.stop == ()


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"top_k": 0}, "top_k"),
        ({"lookahead": -1}, "lookahead"),
        ({"lookahead": 2, "commit": 4}, r"commit=4 exceeds lookahead\+1=3"),
        ({"reward_weight": -0.5}, "reward_weight"),
        ({"reward_weight": float("nan")}, "reward_weight"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"stop": ("",)}, "stop strings must be non-empty"),
        ({"unknown_setting": 3}, "unknown_setting"),
    ],
)
def test_bad_settings_raise_config_error_naming_the_parameter(overrides, needle):
    with pytest.raises(ConfigError, match=needle) as info:
        make_config(**overrides)
    assert isinstance(info.value, ValueError)


def test_updated_revalidates_and_keeps_other_fields():
    cfg = make_config(top_k=7).updated(lookahead=2, stop="###")
    assert (cfg.top_k, cfg.lookahead, cfg.stop) == (7, 2, ("###",))
    with pytest.raises(ConfigError):
        cfg.updated(commit=5)
