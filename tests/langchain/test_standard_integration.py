"""LangChain's standard integration suite for ChatDeAL on the real embedded model, unmodified.

Capabilities DeAL does not have (tool calling, structured output, JSON mode, image/audio/PDF input) are declared
off through the suite's own properties, so the suite skips those tests itself.
"""

import pytest
from langchain_tests.integration_tests import ChatModelIntegrationTests

from langchain_deal import ChatDeAL

pytestmark = pytest.mark.slow


class TestChatDeALIntegration(ChatModelIntegrationTests):
    @property
    def chat_model_class(self) -> type[ChatDeAL]:
        return ChatDeAL

    @property
    def chat_model_params(self) -> dict:
        return {"max_tokens": 24}

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supports_model_override(self) -> bool:
        return False
