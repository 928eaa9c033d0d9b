"""Turning user prompts into token ids: chat template, alignment prompt (start-state adaptation), assistant prefill."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from deal_core.backends.base import Backend
from deal_core.errors import PromptError
from deal_core.messages import PromptLike

if TYPE_CHECKING:
    from deal_core.request import Message, Request



@dataclass(frozen=True)
class EncodedPrompt:
    ids: list[int]
    request: str  # the text rewards see as "the prompt": the last user message


TOOLS_PROMPT = """You can call functions to answer. Here they are, each as a JSON schema:
<tools>
{tools}
</tools>
To call functions, answer with one JSON object per call, each inside <tool_call></tool_call> tags:
<tool_call>
{{"name": <function-name>, "arguments": <arguments-object>}}
</tool_call>"""
# Tool results reach the model as a user turn without wording of ours: each result after its call, one a line
# (`calculator({"a": 156, "operation": "divide", "b": 12}) = 13`), then the question again. None can leak into the
# answer (the 135M model echoed "The tool X returned:" and "Use this result to answer:" when they were there,
# measured); restating the question makes it answer rather than echo; with the call shown it answered "156 / 12 = 13"
# where the bare result "13" gave "156 / 12 = 12.5" (measured, SmolLM2-135M).
RESULTS_PROMPT = "{results}\n\n{question}"
JSON_PROMPT = "Answer with JSON only: one JSON value that matches this JSON schema:\n{schema}"
JSON_OBJECT_PROMPT = "Answer with one JSON object only."


def _with_system(messages: list[Message], text: str) -> list[Message]:
    """`text` joined to the system message (one is created when there is none)."""
    from deal_core.request import Message as RequestMessage

    if messages and messages[0].role in ("system", "developer"):
        first = messages[0]
        joined = f"{first.content}\n\n{text}" if first.content else text
        return [first.model_copy(update={"content": joined}), *messages[1:]]
    return [RequestMessage(role="system", content=text), *messages]


def _plain_tool_turns(messages: list[Message]) -> list[Message]:
    """Tool calls and results as text, for templates that do not render them: an assistant's calls in the tool-call
    format; consecutive tool results as one user turn that gives them and restates the question (small models
    answer from the results when asked again, and echo them otherwise)."""
    from deal_core.constraint import format_tool_call
    from deal_core.request import Message as RequestMessage

    import json

    out: list[Message] = []
    question = ""
    results: list[str] = []
    made: dict[str, str] = {}  # call id -> the call as `name({"arg": ...})`

    def flush() -> None:
        if results:
            text = "\n".join(results)
            out.append(RequestMessage(role="user", content=RESULTS_PROMPT.format(results=text, question=question)
                                      if question else text))
            results.clear()

    for m in messages:
        if m.role == "tool":
            call = made.get(m.tool_call_id or "")
            results.append(f"{call} = {m.content}" if call else m.content)
            continue
        flush()
        if m.role == "user":
            question = m.content
        if m.role == "assistant" and m.tool_calls:
            made.update({c.id: f"{c.name}({json.dumps(c.arguments, ensure_ascii=False)})" for c in m.tool_calls
                         if c.id})
            calls = "\n".join(format_tool_call(c) for c in m.tool_calls)
            m = m.model_copy(update={"content": f"{m.content}\n{calls}" if m.content else calls, "tool_calls": ()})
        out.append(m)
    flush()
    return out


def render_messages(lm: Backend, request: Request, alignment_prompt: str | None = None) -> list[Message]:
    """The request's messages as the model will see them: the alignment prompt and, for templates that do not render
    tools, the tools, calls and results in the documented tool format; a JSON response format shows its schema."""
    import json

    messages = list(request.messages)
    fmt = request.response_format
    mode, _ = request.choice
    native_tools = lm.renders_tools
    if request.tools and mode != "none" and not native_tools:
        specs = "\n".join(json.dumps(t.to_template(), ensure_ascii=False) for t in request.tools)
        messages = _with_system(messages, TOOLS_PROMPT.format(tools=specs))
    if not native_tools:
        messages = _plain_tool_turns(messages)
    if fmt is not None and fmt.type == "json_schema":
        messages = _with_system(messages, JSON_PROMPT.format(schema=json.dumps(fmt.json_schema, ensure_ascii=False)))
    elif fmt is not None and fmt.type == "json_object":
        messages = _with_system(messages, JSON_OBJECT_PROMPT)
    if alignment_prompt:
        messages = _with_system(messages, alignment_prompt) if messages[0].role != "system" else [
            messages[0].model_copy(update={"content": f"{alignment_prompt}\n\n{messages[0].content}"}),
            *messages[1:]]
    return messages


def encode_prompt(
    lm: Backend,
    prompt: PromptLike | Request,
    alignment_prompt: str | None = None,
    use_chat_template: bool | None = None,
) -> EncodedPrompt:
    """Token ids for the model to continue. A trailing assistant message is continued, not closed (prefill)."""
    from deal_core.request import Request

    request = Request.of(prompt)
    messages = render_messages(lm, request, alignment_prompt)
    prefill = messages[-1].role == "assistant" and not messages[-1].tool_calls
    chat = lm.has_chat_template if use_chat_template is None else use_chat_template
    if chat:
        if not lm.has_chat_template:
            raise PromptError(f"model {lm.name!r} has no chat template; pass use_chat_template=False")
        native = lm.renders_tools and request.tools and request.choice[0] != "none"
        ids = lm.encode_chat([m.to_template() for m in messages], continue_final=prefill,
                             tools=[t.to_template() for t in request.tools] if native else None)
    else:
        ids = lm.encode_text("\n\n".join(m.content for m in messages))
    return EncodedPrompt(ids=list(ids), request=request.text)
