"""LangChain's standard unit suite for ChatDeAL, unmodified."""

from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_deal import ChatDeAL


class TestChatDeALUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[ChatDeAL]:
        return ChatDeAL

    @property
    def chat_model_params(self) -> dict:
        return {"model": None}
