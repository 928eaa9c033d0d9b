"""The text side of a GGUF model on llama.cpp: its tokenizer (llama.cpp's), its chat template (from the GGUF
metadata, rendered by transformers' renderer) and its vocabulary as llguidance sees it. A mixin of `LlamaCppModel`,
which sets `_model`, `_vocab`, `n_vocab`, `chat_template`, `name`, `eos_token_ids`, `n_ctx` and `lock`."""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Mapping, Sequence
from typing import Any

from jinja2 import TemplateError

from deal_core.backends.llama_native import C
from deal_core.errors import PromptError


class GGUFText:
    @property
    def context_window(self) -> int:
        return min(C.llama_model_n_ctx_train(self._model), self.n_ctx)

    @property
    def has_chat_template(self) -> bool:
        return bool(self.chat_template)

    @property
    def renders_tools(self) -> bool:
        return isinstance(self.chat_template, str) and "tools" in self.chat_template

    @functools.cached_property
    def _grammar_tokenizer(self) -> Any:
        import llguidance.llamacpp

        return llguidance.llamacpp.lltokenizer_from_vocab(self._vocab, n_vocab=self.n_vocab,
                                                          eos_token=sorted(self.eos_token_ids))

    def grammar_tokenizer(self) -> Any:
        with self.lock:
            return self._grammar_tokenizer

    # -- text <-> tokens ---------------------------------------------------------------------------------------
    def _piece(self, token: int) -> str:
        buf = ctypes.create_string_buffer(256)
        n = C.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, True)
        return bytes(buf[:max(n, 0)]).decode("utf-8", errors="replace")

    def encode_chat(self, messages: Sequence[Mapping[str, Any]], *, continue_final: bool = False,
                    tools: Sequence[Mapping[str, Any]] | None = None) -> list[int]:
        return self.encode_text(self._render(messages, continue_final, tools), special_tokens=False)

    def _render(self, messages: Sequence[Mapping[str, Any]], continue_final: bool = False,
                tools: Sequence[Mapping[str, Any]] | None = None) -> str:
        from transformers.utils.chat_template_utils import render_jinja_template

        if not self.chat_template:
            raise PromptError(f"model {self.name!r} has no chat template in its GGUF metadata: send plain text")
        specials = {"bos_token": self._piece(C.llama_vocab_bos(self._vocab)),
                    "eos_token": self._piece(C.llama_vocab_eos(self._vocab))}
        try:
            rendered, _ = render_jinja_template(
                conversations=[list(messages)], tools=list(tools) if tools else None, chat_template=self.chat_template,
                add_generation_prompt=not continue_final, continue_final_message=continue_final, **specials)
        except TemplateError as exc:
            raise PromptError(f"model {self.name!r}'s chat template rejected the messages: {exc}") from None
        return rendered[0]

    def render_chat(self, messages: Sequence[Mapping[str, Any]]) -> str:
        return self._render(messages)

    def encode_text(self, text: str, *, special_tokens: bool = True) -> list[int]:
        data = text.encode()
        size = len(data) + 16
        while True:
            buf = (C.llama_token * size)()
            n = C.llama_tokenize(self._vocab, data, len(data), buf, size, special_tokens, True)
            if n >= 0:
                return list(buf[:n])
            size = -n

    def decode(self, ids: Sequence[int], *, keep_special: bool = False) -> str:
        ids = list(ids)
        tokens = (C.llama_token * max(len(ids), 1))(*ids)
        size = 8 * len(ids) + 16
        while True:
            buf = ctypes.create_string_buffer(size)
            n = C.llama_detokenize(self._vocab, tokens, len(ids), buf, size, False, keep_special)
            if n >= 0:
                return bytes(buf[:n]).decode("utf-8", errors="replace")
            size = -n

    def decode_batch(self, sequences: Sequence[Sequence[int]]) -> list[str]:
        return [self.decode(s) for s in sequences]
