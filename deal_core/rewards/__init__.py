"""Alignment objectives. Each reward is one small class behind the `Reward` protocol; see README's reward table."""

from deal_core.rewards.adapters import Constraint, FunctionReward, reward_from_function
from deal_core.rewards.base import (
    Reward,
    RewardScores,
    RewardSum,
    Score,
    WeightedReward,
    as_reward_sum,
)
from deal_core.rewards.blocklist import Blocklist
from deal_core.rewards.fluency import Fluency
from deal_core.rewards.formats import JsonSchema, Regex
from deal_core.rewards.grounding import Grounding
from deal_core.rewards.keywords import Keywords
from deal_core.rewards.learned import Inoffensive, Judge, RewardModel, Sentiment
from deal_core.rewards.length import Length
from deal_core.rewards.outputs import text_of
from deal_core.rewards.registry import (
    REGISTRY,
    parse_reward_spec,
    register_reward,
    reward_from_spec,
    rewards_from_cli,
    rewards_from_json,
)
from deal_core.rewards.safety import Safety
from deal_core.rewards.tool_need import ToolNeed
from deal_core.rewards.tools import ToolArguments

__all__ = [
    "REGISTRY",
    "Blocklist",
    "Constraint",
    "Fluency",
    "FunctionReward",
    "Grounding",
    "Inoffensive",
    "JsonSchema",
    "Judge",
    "Keywords",
    "Length",
    "Regex",
    "Reward",
    "RewardModel",
    "RewardScores",
    "RewardSum",
    "Safety",
    "Score",
    "Sentiment",
    "ToolArguments",
    "ToolNeed",
    "WeightedReward",
    "as_reward_sum",
    "parse_reward_spec",
    "register_reward",
    "reward_from_function",
    "reward_from_spec",
    "rewards_from_cli",
    "rewards_from_json",
    "text_of",
]
