"""The llama.cpp engine's prompt cache: the last single prompt's KV cells kept under a sequence id of their own, so
the next prompt that begins the same way (the chat template's system prompt, a conversation's earlier turns) decodes
only the rest, as llama-cpp-python's own loop does (on the bench's CommonGen prompts 27 of 48 prompt tokens).

Exact where a row's scores do not depend on its pass (`LlamaCppModel._probe_single_rows`; otherwise the engine keeps
no cache): the cached cells hold what a fresh prefill computes for those positions, and cutting the cache back to the
shared prefix frees the cells after it, so with nothing else in flight the rest of the prompt takes the cells a fresh
prefill gives it. Only the engine's own greedy loop (`generate`) uses it; a search's prefill drops it first, so
the search's cells lie as before (a row forked from a cached prompt and cropped scored 0.2-0.5 nats off in the
conformance suite: not understood yet, so the search does not share the cache)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from deal_core.backends.llama_native import C


class PromptCache:
    """One context's cached prompt: its tokens, held by sequence id `seq` in memory `mem`."""

    def __init__(self, mem: Any, seq: int):
        self.mem, self.seq, self.tokens = mem, seq, []

    def reuse(self, tokens: Sequence[int]) -> int:
        """Cut the cache to its longest common prefix with `tokens` (leaving at least one token to decode, whose
        logits the caller needs); returns that prefix's length."""
        limit, n = min(len(tokens) - 1, len(self.tokens)), 0
        while n < limit and tokens[n] == self.tokens[n]:
            n += 1
        if n < len(self.tokens):
            C.llama_memory_seq_rm(self.mem, self.seq, n, -1)
            del self.tokens[n:]
        return n

    def share(self, seq: int, n: int) -> None:
        """Sequence `seq` gets the cache's first `n` cells (shared, not copied)."""
        if n:
            C.llama_memory_seq_cp(self.mem, self.seq, seq, 0, n)

    def keep(self, seq: int, tokens: Sequence[int]) -> None:
        """`tokens`, just decoded into sequence `seq` (which shares the cache's prefix of them), become the cache."""
        C.llama_memory_seq_cp(self.mem, seq, self.seq, len(self.tokens), len(tokens))
        self.tokens = list(tokens)

    def clear(self) -> None:
        if self.tokens:
            C.llama_memory_seq_rm(self.mem, self.seq, -1, -1)
            self.tokens = []


def rows_independent(run: Any, ctx: Any, mem: Any, n_vocab: int) -> bool:
    """Whether a row gets the same bits alone, beside one other row and beside eight (llama.cpp switches some
    matrix kernels at 8 rows): a 4-token prefix, then its next token in each pass. `run` feeds (token, position,
    sequence id, wants logits) entries."""
    head, nxt = [min(100 + 7 * j, n_vocab - 1) for j in range(4)], min(200, n_vocab - 1)
    rows = []
    try:
        run([(t, j, 0, j == 3) for j, t in enumerate(head)])
        for others in (0, 1, 8):
            for seq in range(9):
                C.llama_memory_seq_rm(mem, seq, 4 if seq == 0 else -1, -1)
            run([(nxt, 4, 0, True)] + [(head[0], 0, 1 + i, True) for i in range(others)])
            rows.append(np.ctypeslib.as_array(C.llama_get_logits(ctx), shape=(1 + others, n_vocab))[:1].copy())
        return all(np.array_equal(rows[0], r) for r in rows[1:])
    finally:
        C.llama_memory_clear(mem, False)
