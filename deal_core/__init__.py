"""DeAL: decoding-time alignment of language models as reward-guided search (Huang et al., 2024)."""

from deal_core import rewards
from deal_core.config import DeALConfig, make_config
from deal_core.decoder import DeAL, TextStream
from deal_core.errors import (
    ConfigError,
    ContextLengthError,
    DeALError,
    GenerationTimeout,
    ModelLoadError,
    PromptError,
    RewardError,
    RewardSpecError,
)
from deal_core.model import EMBEDDED_MODEL, LanguageModel, load_model
from deal_core.result import GenerationResult, SearchStats

__all__ = [
    "EMBEDDED_MODEL",
    "ConfigError",
    "ContextLengthError",
    "DeAL",
    "DeALConfig",
    "DeALError",
    "GenerationResult",
    "GenerationTimeout",
    "LanguageModel",
    "ModelLoadError",
    "PromptError",
    "RewardError",
    "RewardSpecError",
    "SearchStats",
    "TextStream",
    "load_model",
    "make_config",
    "rewards",
]
__version__ = "0.1.0"
