"""Alignment objectives. Each reward is one small class behind the `Reward` protocol."""

from deal_core.rewards.base import REGISTRY, Reward, RewardScores, RewardSum, WeightedReward, as_reward_sum
from deal_core.rewards.keywords import Keywords
from deal_core.rewards.length import Length
from deal_core.rewards.registry import parse_reward_spec, reward_from_spec, rewards_from_cli, rewards_from_json

__all__ = [
    "REGISTRY",
    "Keywords",
    "Length",
    "Reward",
    "RewardScores",
    "RewardSum",
    "WeightedReward",
    "as_reward_sum",
    "parse_reward_spec",
    "reward_from_spec",
    "rewards_from_cli",
    "rewards_from_json",
]
