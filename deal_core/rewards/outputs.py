"""`text_of`: the text a reward scores in a finished output of any framework (a string, a dict, or a type a framework
package registers)."""

from __future__ import annotations

from functools import singledispatch
from typing import Any


@singledispatch
def text_of(output: Any) -> str:
    """The text of a finished output: a string, or a dict holding it under "text", "output", "response", "content"
    or "answer". Framework packages register their own output types with `text_of.register(type, func)`:
    `langchain_deal` (messages, generations) and `llamaindex_deal` (chat messages, completions, query responses)
    do so when imported."""
    raise TypeError(f"cannot find text in a {type(output).__name__}; pass a string")


@text_of.register(str)
def _text_of_str(output: str) -> str:
    return output


@text_of.register(dict)
def _text_of_dict(output: dict) -> str:
    for key in ("text", "output", "response", "content", "answer"):
        if isinstance(output.get(key), str):
            return output[key]
    raise TypeError("cannot find text in a dict without a string 'text' key; pass a string")
