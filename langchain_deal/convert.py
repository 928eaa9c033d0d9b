"""LangChain → deal_core: the text of LangChain's outputs.

Importing this module registers LangChain's messages and generations with `deal_core.rewards.text_of`, so a reward
scores them directly: `prompt | chat | Harmlessness()`.
"""

from __future__ import annotations

from langchain_core.messages import BaseMessage
from langchain_core.outputs import Generation

from deal_core.rewards import text_of


@text_of.register(BaseMessage)
def _message_text(output: BaseMessage) -> str:
    return str(output.text)


@text_of.register(Generation)
def _generation_text(output: Generation) -> str:
    return output.text
