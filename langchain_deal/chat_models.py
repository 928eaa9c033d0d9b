"""`ChatDeAL`: a LangChain chat model that decodes with DeAL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from operator import itemgetter
from typing import Any, Literal

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.chat_models import LangSmithParams
from langchain_core.language_models.model_profile import ModelProfile
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import invalid_tool_call, tool_call, tool_call_chunk
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.output_parsers.openai_tools import JsonOutputKeyToolsParser, PydanticToolsParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableConfig, RunnableMap, RunnablePassthrough
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_json_schema, convert_to_openai_tool
from langchain_core.utils.pydantic import is_basemodel_subclass
from pydantic import Field, SecretStr

from deal_core.errors import ConfigError
from deal_core.params import DeALParams, call_settings, output_args, result_metadata, search_params
from deal_core.request import Request
from deal_core.result import GenerationResult
from deal_core.rewards import as_reward_sum
from langchain_deal.convert import lift_user_text, search_overrides, to_messages, user_text_of
from langchain_deal.streaming import astream_chunks, stream_chunks


def _metadata(result: GenerationResult, model_name: str) -> dict[str, Any]:
    """`result_metadata` with LangChain's finish reasons: "stop" where the model ended (DeAL says "eos")."""
    meta = result_metadata(result, model_name)
    if meta.get("finish_reason") == "eos":
        meta["finish_reason"] = "stop"
    return meta


def _usage(result: GenerationResult) -> UsageMetadata:
    usage = result.usage
    return UsageMetadata(input_tokens=usage.prompt_tokens, output_tokens=usage.completion_tokens,
                         total_tokens=usage.total_tokens)


class ChatDeAL(DeALParams, BaseChatModel):
    """Chat model over a local transformers LM, aligned at decoding time by rewards.

    ```python
    from langchain_deal import ChatDeAL
    from deal_core.rewards import Safety, Keywords

    chat = ChatDeAL(rewards=[Safety()], max_tokens=64)
    chat.bind(rewards=[Keywords(["dog", "park"])], reward_weight=3).invoke("Write about a dog.")
    ```
    Agent turns: `tool_choice="auto"` is decided by `ToolNeed`; a turn that answers after tool results also scores
    `ToolResultUse` (weight `tool_result_weight`, default 1, 0 = off); a turn whose only output is a call the budget
    cut is asked once more with twice the budget (`invoke`/`ainvoke`; see `deal_core/tool_turns.py`).
    RAG: rewards judge the user's own words (`Request.text`: the last user message). Where a prompt template puts
    retrieved passages and the question into one user message, name the question: `user_text=question` as a call
    argument, or `config={"metadata": {"deal_user_text": question}}` on the chain (docs/safety.md, "RAG").
    Constructing it loads nothing; the weights load on first use and are shared between instances.
    Every call converts its messages and arguments into one `deal_core.request.Request` (`_request`).
    """

    # LangChain chat-model conventions (the standard test suite constructs every chat model with these)
    streaming: bool = Field(False, description="invoke() runs through stream(): callbacks get each committed token.")
    max_retries: int = Field(0, description="Accepted for API compatibility; a local model does not retry.")
    api_key: SecretStr | None = Field(None, exclude=True, description="Accepted for drop-in compatibility with "
                                      "hosted chat models; a local model needs no key and never sends it anywhere.")

    @property
    def _llm_type(self) -> str:
        return "deal-chat"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return search_params(self)

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(ls_provider="deal", ls_model_name=kwargs.get("model") or self.model_name,
                                 ls_model_type="chat",
                                 ls_temperature=self.temperature or 0.0)
        if self.max_tokens:
            params["ls_max_tokens"] = self.max_tokens
        stops = stop or self.stop
        if stops:
            params["ls_stop"] = [stops] if isinstance(stops, str) else list(stops)
        return params

    def _resolve_model_profile(self) -> ModelProfile | None:
        return ModelProfile(text_inputs=True, image_inputs=False, audio_inputs=False, video_inputs=False,
                            pdf_inputs=False, text_outputs=True, tool_calling=True, tool_choice=True,
                            tool_call_streaming=True, structured_output=True)

    def with_rewards(self, rewards: Any, **settings: Any) -> ChatDeAL:
        """A copy of this model with `rewards` (and search settings such as `reward_weight`) as its own fields.
        Unlike `.bind(rewards=...)`, the result is still a chat model, so `bind_tools`, `with_structured_output`
        and `create_agent` (which calls `bind_tools` on the model it is given) keep the rewards."""
        unknown = sorted(set(settings) - set(type(self).model_fields))
        if unknown:
            raise ConfigError(f"with_rewards got unknown settings {unknown}; they are ChatDeAL fields such as "
                              "reward_weight, top_k, max_tokens")
        return self.model_copy(update={"rewards": [as_reward_sum(rewards)], **settings})

    # -- tools and structured output -------------------------------------------------------------------------
    def bind_tools(self, tools: Sequence[dict[str, Any] | type | Callable | BaseTool], *,
                   tool_choice: str | dict[str, Any] | bool | None = None, parallel_tool_calls: bool | None = None,
                   strict: bool | None = None, **kwargs: Any) -> Runnable[Any, AIMessage]:
        """Tools the model may call. `tool_choice`: "auto" (default), "none", "any"/"required"/True (some call),
        a tool's name or `{"type": "function", "function": {"name": ...}}`. Calls are enforced during the search:
        the name is a bound tool's and the arguments are valid JSON for its schema (`strict` changes nothing)."""
        formatted = [convert_to_openai_tool(t) for t in tools]
        Request.of("check", tools=formatted, tool_choice=tool_choice)  # bad tools or choices fail here, not later
        extra = {"parallel_tool_calls": parallel_tool_calls} if parallel_tool_calls is not None else {}
        if tool_choice is not None:
            extra["tool_choice"] = tool_choice
        return self.bind(tools=formatted, **extra, **kwargs)

    def with_structured_output(self, schema: dict[str, Any] | type, *,
                               method: Literal["json_schema", "function_calling", "json_mode"] = "json_schema",
                               include_raw: bool = False, strict: bool | None = None,
                               **kwargs: Any) -> Runnable[Any, dict[str, Any] | Any]:
        """Output that always parses and validates against `schema` (a pydantic model, TypedDict or JSON schema):
        the search only writes JSON that the schema allows. `method`: "json_schema" (the answer is the JSON),
        "function_calling" (a forced call of one tool named after the schema) or "json_mode" (any JSON object;
        `schema` then only parses)."""
        if kwargs:
            raise ConfigError(f"with_structured_output got unknown arguments {sorted(kwargs)}")
        pydantic = isinstance(schema, type) and is_basemodel_subclass(schema)
        if method == "function_calling":
            tool = convert_to_openai_tool(schema)
            name = tool["function"]["name"]
            llm = self.bind_tools([schema], tool_choice=name, parallel_tool_calls=False,
                                  ls_structured_output_format={"kwargs": {"method": method}, "schema": tool})
            parser: Runnable = PydanticToolsParser(tools=[schema], first_tool_only=True) if pydantic else \
                JsonOutputKeyToolsParser(key_name=name, first_tool_only=True)
        elif method in ("json_schema", "json_mode"):
            if method == "json_schema":
                json_schema = (schema.model_json_schema() if hasattr(schema, "model_json_schema") else
                               schema.schema()) if pydantic else convert_to_json_schema(schema)  # v2 or v1
                fmt = {"type": "json_schema", "json_schema": {"name": json_schema.get("title", "output"),
                                                              "schema": json_schema}}
            else:
                fmt = {"type": "json_object"}
            llm = self.bind(response_format=fmt, ls_structured_output_format={
                "kwargs": {"method": method}, "schema": schema})
            parser = PydanticOutputParser(pydantic_object=schema) if pydantic else JsonOutputParser()
        else:
            raise ConfigError(f"method={method!r} is not one of 'json_schema', 'function_calling', 'json_mode'")
        if not include_raw:
            return llm | parser
        parsed = RunnablePassthrough.assign(parsed=itemgetter("raw") | parser, parsing_error=lambda _: None)
        fallback = RunnablePassthrough.assign(parsed=lambda _: None)
        return RunnableMap(raw=llm) | parsed.with_fallbacks([fallback], exception_key="parsing_error")

    # -- LangChain → Request, GenerationResult → LangChain ----------------------------------------------------
    def _request(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any],
                 run_manager: Any = None) -> Request:
        kwargs = dict(kwargs)
        output = output_args(kwargs)
        user_text = user_text_of(kwargs, run_manager)
        rewards, settings = call_settings(self, search_overrides(stop, kwargs))
        return Request.of(to_messages(messages), rewards, user_text=user_text, **output, **settings)

    def _result(self, result: GenerationResult) -> ChatResult:
        calls = [tool_call(name=c.name, args=c.arguments, id=c.id) for c in result.tool_calls]
        # calls the budget cut are not runnable: LangChain's invalid_tool_calls, which agents do not execute
        cut = [invalid_tool_call(name=c["name"], args=c["args"], id=None, error=c["error"])
               for c in result.invalid_tool_calls]
        message = AIMessage(content=result.text, tool_calls=calls, invalid_tool_calls=cut,
                            usage_metadata=_usage(result), response_metadata=_metadata(result, self.model_name))
        return ChatResult(generations=[ChatGeneration(message=message)])

    @staticmethod
    def _chunk(delta: str) -> ChatGenerationChunk:
        return ChatGenerationChunk(message=AIMessageChunk(content=delta))

    def _last_chunk(self, result: GenerationResult) -> ChatGenerationChunk:
        """Usage, metadata and the tool calls (whole, one chunk each by `index`: they are decided at the end). Calls
        the budget cut are left out: a chunk's arguments are re-parsed leniently when chunks are merged, which would
        make them runnable; `finish_reason="length"` says the budget ended the answer."""
        chunks = [tool_call_chunk(name=c.name, args=c.arguments_json, id=c.id, index=i)
                  for i, c in enumerate(result.tool_calls)]
        return ChatGenerationChunk(message=AIMessageChunk(
            content="", tool_call_chunks=chunks, usage_metadata=_usage(result), chunk_position="last",
            response_metadata=_metadata(result, self.model_name)))

    # -- the calls -------------------------------------------------------------------------------------------
    def stream(self, input: Any, config: RunnableConfig | None = None, *, stop: list[str] | None = None,
               **kwargs: Any) -> Iterator[AIMessageChunk]:
        return super().stream(input, config, stop=stop, **lift_user_text(config, kwargs))

    def astream(self, input: Any, config: RunnableConfig | None = None, *, stop: list[str] | None = None,
                **kwargs: Any) -> AsyncIterator[AIMessageChunk]:
        return super().astream(input, config, stop=stop, **lift_user_text(config, kwargs))

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        request, decoder = self._request(messages, stop, kwargs, run_manager), self._decoder()
        return self._result(decoder.generate(request))  # a cut call alone is retried by the decoder itself

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        request, decoder = self._request(messages, stop, kwargs, run_manager), self._decoder()
        return self._result(await decoder.agenerate(request))

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        return stream_chunks(lambda: self._decoder().stream(self._request(messages, stop, kwargs, run_manager)),
                             self._chunk, self._last_chunk, run_manager)

    def _astream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                 run_manager: AsyncCallbackManagerForLLMRun | None = None,
                 **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        return astream_chunks(lambda: self._decoder().astream(self._request(messages, stop, kwargs, run_manager)),
                              self._chunk, self._last_chunk, run_manager)
