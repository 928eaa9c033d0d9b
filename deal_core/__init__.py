"""DeAL: decoding-time alignment of language models as reward-guided search (Huang et al., 2024)."""

from deal_core import rewards
from deal_core.config import DeALConfig, make_config
from deal_core.decoder import DeAL, TextStream
from deal_core.errors import (
    ConfigError,
    ConstraintError,
    ContextLengthError,
    DeALError,
    GenerationTimeout,
    ModelLoadError,
    PromptError,
    RewardError,
    RewardSpecError,
)
from deal_core.model import EMBEDDED_MODEL, load_model
from deal_core.result import GenerationResult, SearchStats

__all__ = [
    "EMBEDDED_MODEL",
    "ConfigError",
    "ConstraintError",
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


def __getattr__(name: str) -> object:
    """`deal_core.LanguageModel` (the transformers backend) is imported on first use: a llama.cpp process never
    loads transformers' model classes."""
    if name == "LanguageModel":
        from deal_core.model import LanguageModel

        return LanguageModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
