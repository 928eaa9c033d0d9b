"""The llama.cpp backend: a GGUF file run natively (4-bit kernels) through llama-cpp-python's low-level API.

One llama.cpp context holds every sequence handle as a sequence id in one unified KV cache: the seam's verbs map
onto llama.cpp directly. Forking is `llama_memory_seq_cp` (the cells are shared, nothing is copied), cropping and
dropping are `llama_memory_seq_rm`, and every sequence keeps its own positions. Logits: only where the search reads,
numpy float32, proposals from backends/np_proposer.py. The chat template is the one in the GGUF metadata, rendered
by transformers' renderer and tokenized by llama.cpp.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import os
import threading
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from llama_cpp._logger import set_verbose

from deal_core.backends import np_proposer
from deal_core.backends.base import Generated, Proposer
from deal_core.backends.gguf_text import GGUFText
from deal_core.backends.llama_native import C
from deal_core.backends.llama_prefix import PromptCache, rows_independent
from deal_core.errors import ConfigError, ModelLoadError, PromptError
from deal_core.stops import stopped

MAX_SEQUENCES = 256  # LLAMA_MAX_SEQ: sequence ids one llama.cpp context can hold at once
SCRATCH = MAX_SEQUENCES - 1  # the scratch sequence (see `_decode`)
PROMPT = SCRATCH - 1  # the cached prompt (llama_prefix.py); rows get the others


class _Seq:
    """A handle: one sequence id and its length. Dropped explicitly, or when nothing refers to it any more: then
    its id is queued for release (cells dropped later, under the model's lock: a finalizer may run on another
    thread while llama.cpp is decoding)."""

    __slots__ = ("__weakref__", "id", "length", "release")

    def __init__(self, engine: LlamaCppModel, length: int = 0):
        self.id, self.length = engine._acquire(), length
        self.release = weakref.finalize(self, engine._released.append, self.id)

    def live(self) -> int:
        if not self.release.alive:
            raise ValueError("a dropped sequence handle was used")
        return self.id


@dataclass(eq=False)
class LlamaCppModel(GGUFText):
    """A GGUF model in a llama.cpp context: the llama.cpp implementation of `deal_core.backends.Backend` (its text
    side, tokens and chat template, in `gguf_text.py`)."""

    path: Path
    name: str
    n_ctx: int = 6144  # KV cells of all live rows (a shared prefix counts once); 8192, the full window: +47 MB
    n_batch: int = 512
    n_threads: int = 0  # 0: the CPUs this process may use
    eos_token_ids: frozenset[int] = frozenset()
    pad_token_id: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    # not batch-invariant: once a sequence's KV cells are not contiguous its attention sums round differently (up to
    # 0.1 nats over a 12-token answer). Concurrent calls run in `isolated()` views (a context each, ~n_ctx × 23 KB
    # on the embedded model), at most `max_isolated`, sharing passes or, with `isolate_calls`, one call per view
    batch_invariant: bool = False
    max_isolated: int = 4

    def __post_init__(self) -> None:
        C.llama_backend_init()
        set_verbose(False)  # llama.cpp's log goes through llama-cpp-python's logger: errors only
        mparams = C.llama_model_default_params()
        # no repacked weight layouts (AMX, interleaved Q4_0/Q4_K): their matrix and vector kernels round differently,
        # so a row's scores would depend on its batch (and AMX crashed here: the CPU reports it, the sandbox denies it)
        mparams.use_extra_bufts = False
        self._model = C.llama_model_load_from_file(str(self.path).encode(), mparams)
        if not self._model:
            raise ModelLoadError(f"llama.cpp could not load {self.path}: not a GGUF model file it supports")
        self._contexts: list[Any] = []  # every context made for this model, freed with it
        self._idle: list[Any] = []  # contexts of closed isolated views, for the next one
        self._parent: LlamaCppModel | None = None
        weakref.finalize(self, _free_native, self._contexts, self._model)
        self._open(self._new_context())
        self._vocab = C.llama_model_get_vocab(self._model)
        self.n_vocab = C.llama_vocab_n_tokens(self._vocab)
        self._batch = C.llama_batch_init(self.n_batch, 0, 1)
        weakref.finalize(self, C.llama_batch_free, self._batch)
        self._single_rows_exact = rows_independent(self._run, self._ctx, self._mem, self.n_vocab)
        self._cache = PromptCache(self._mem, PROMPT) if self._single_rows_exact else None
        if not self.eos_token_ids:
            ids = {C.llama_vocab_eos(self._vocab), C.llama_vocab_eot(self._vocab)}
            self.eos_token_ids = frozenset(int(i) for i in ids if i >= 0)
        pad = C.llama_vocab_pad(self._vocab)
        self.pad_token_id = int(pad) if pad >= 0 else min(self.eos_token_ids, default=0)
        template = C.llama_model_chat_template(self._model, None)
        self.chat_template = template.decode() if template else None

    # -- contexts: each a KV cache of its own over the same weights --------------------------------------------
    def _new_context(self) -> Any:
        cparams = C.llama_context_default_params()
        cparams.n_ctx, cparams.n_batch, cparams.n_ubatch = self.n_ctx, self.n_batch, self.n_batch
        cparams.n_seq_max, cparams.n_outputs_max, cparams.kv_unified = MAX_SEQUENCES, MAX_SEQUENCES, True
        cparams.n_threads = cparams.n_threads_batch = self.n_threads or len(os.sched_getaffinity(0))
        cparams.no_perf = True
        # Flash attention off: on the CPU it returned logits 0.5-1 nats off for a row whose cells lie between other
        # rows' cells in the unified cache (tests/unit/test_backend_conformance.py caught it; llama.cpp 0.3.36)
        cparams.flash_attn_type = C.LLAMA_FLASH_ATTN_TYPE_DISABLED
        ctx = C.llama_init_from_model(self._model, cparams)
        if not ctx:
            raise ModelLoadError(f"llama.cpp could not create a context of {self.n_ctx} cells for {self.path}")
        self._contexts.append(ctx)
        return ctx

    capacity = property(lambda self: (PROMPT, self.n_ctx))  # sequences and cells a view holds (scheduler.footprint)
    prefill_piece = 127  # prompts are decoded in pieces this long (as fast as 511 here), a piece per turn (loop.py)

    def _open(self, ctx: Any) -> None:
        self._ctx, self._mem = ctx, C.llama_get_memory(ctx)
        self._free = list(range(PROMPT - 1, -1, -1))
        self._released: list[int] = []
        self._cache = PromptCache(self._mem, PROMPT) if getattr(self, "_single_rows_exact", False) else None

    def isolated(self) -> LlamaCppModel:
        """This model with a KV cache of its own (the weights are shared): what a search computes there does not
        depend on anything else in flight. `close()` gives the cache back for the next view."""
        with self.lock:
            view = copy.copy(self)
            view._parent = self
            view._open(self._idle.pop() if self._idle else self._new_context())
            return view

    def close(self) -> None:
        """An isolated view's cache goes back to its model (its handles must not be used any more)."""
        if self._parent is None:
            raise ValueError("close() is for views made by isolated(); the model frees its caches when collected")
        with self.lock:
            if self._ctx is None:
                return
            C.llama_memory_clear(self._mem, False)
            self._parent._idle.append(self._ctx)
            # a handle of this view dropped later (a step closed by the garbage collector) touches nothing: the
            # cache may already serve another view
            self._ctx = self._mem = self._cache = None
            self._free, self._released = [], []

    # -- sequence ids ------------------------------------------------------------------------------------------
    def _flush(self) -> None:
        if self._ctx is None:
            raise ValueError("this isolated view was closed: its handles are gone")
        while self._released:
            seq = self._released.pop()
            C.llama_memory_seq_rm(self._mem, seq, -1, -1)
            self._free.append(seq)
            if len(self._free) == PROMPT:  # no row left: the next prompt's cells start where they would alone
                if self._cache is not None and self._cache.tokens:
                    C.llama_memory_seq_rm(self._mem, SCRATCH, -1, -1)  # the cached prompt's cells stay
                else:
                    C.llama_memory_clear(self._mem, False)

    def _acquire(self) -> int:
        self._flush()
        if not self._free:
            gc.collect()  # rows caught in reference cycles
            self._flush()
        if not self._free:
            raise ConfigError(f"the llama.cpp engine holds at most {SCRATCH} rows at once (prompts × "
                              "beam_width × top_k, all searches together): lower top_k, beam_width or concurrency")
        return self._free.pop()

    def _fork(self, src: _Seq, length: int) -> _Seq:
        if not 0 < length <= src.length:
            raise ValueError(f"cannot fork {length} tokens of a sequence of {src.length}")
        seq = _Seq(self, length)
        C.llama_memory_seq_cp(self._mem, src.live(), seq.id, 0, length)
        return seq

    # -- the forward pass --------------------------------------------------------------------------------------
    def _decode(self, entries: Sequence[tuple[int, int, int, bool]], pad: bool = True, most: int = 0) -> np.ndarray:
        """Feed (token, position, sequence id, wants logits) entries; the logits of those that want them, in order.

        With `pad` (the search's passes) every pass has at least two token rows and two outputs: a scratch token at
        position 0 of a scratch sequence fills in, so a row's scores do not depend on its pass where llama.cpp's
        kernels round one row differently from several (its llamafile kernels: up to 0.7 nats on the embedded model).
        Without it (35% faster on one-row passes) pruning changed one more conformance case's answer. The engine's
        own greedy loop (`generate`: one row, no decisions) feeds its row alone where `rows_independent` holds."""
        self._flush()
        out, start = [], 0
        while start < len(entries):
            chunk, outputs = [], 0
            for entry in entries[start:]:
                if len(chunk) == (most or self.n_batch - 1) or outputs + entry[3] > MAX_SEQUENCES - 1:
                    break
                chunk.append(entry)
                outputs += entry[3]
            start += len(chunk)
            scratch = pad and (len(chunk) < 2 or outputs < 2)
            if scratch:
                C.llama_memory_seq_rm(self._mem, SCRATCH, -1, -1)
                chunk.append((0, 0, SCRATCH, True))
            self._run(chunk)
            wanted = outputs + scratch
            if wanted:
                ptr = C.llama_get_logits(self._ctx)
                logits = np.ctypeslib.as_array(ptr, shape=(wanted, self.n_vocab))[:outputs]
                out.append(logits.copy())
        if not out:
            return np.empty((0, self.n_vocab), dtype=np.float32)
        return out[0] if len(out) == 1 else np.concatenate(out)

    def _run(self, chunk: Sequence[tuple[int, int, int, bool]]) -> None:
        b = self._batch
        for j, (token, pos, seq, logits) in enumerate(chunk):
            b.token[j], b.pos[j], b.n_seq_id[j], b.logits[j] = token, pos, 1, logits
            b.seq_id[j][0] = seq
        b.n_tokens = len(chunk)
        rc = C.llama_decode(self._ctx, b)
        if rc == 1:  # no room in the KV cache: the cached prompt and rows that reference cycles hold may free some
            if self._cache is not None:
                self._cache.clear()
            gc.collect()
            self._flush()
            rc = C.llama_decode(self._ctx, b)
        if rc == 1:
            raise ConfigError(f"llama.cpp's KV cache is full: it holds n_ctx={self.n_ctx} tokens for all rows "
                              "together; load the model with a larger n_ctx or run fewer prompts at once")
        if rc != 0:
            raise RuntimeError(f"llama_decode failed (code {rc})")

    # -- the forward verbs ------------------------------------------------------------------------------------
    def prefill(self, sequences: Sequence[Sequence[int]], pad: bool = True) -> tuple[list[_Seq], np.ndarray]:
        """Each sequence in its own sequence id; logits after each one's last token [sequences, vocab]."""
        if not sequences or any(len(s) == 0 for s in sequences):
            raise PromptError("every prompt needs at least one token")
        self._flush()
        if self._cache is not None and len(sequences) == 1 and not pad and len(self._free) == PROMPT:
            return self._prefill_cached(sequences[0], pad)  # the engine's own greedy loop, no other row in the cache
        if self._cache is not None:
            self._cache.clear()
        handles = [_Seq(self, len(s)) for s in sequences]
        entries = [(t, j, h.id, j == len(s) - 1) for h, s in zip(handles, sequences) for j, t in enumerate(s)]
        return handles, self._decode(entries, pad, self.prefill_piece)

    def _prefill_cached(self, tokens: Sequence[int], pad: bool) -> tuple[list[_Seq], np.ndarray]:
        """One prompt: the cached prompt's common prefix shared, the rest decoded; then it is the cached prompt."""
        shared = self._cache.reuse(tokens)
        handle = _Seq(self, len(tokens))
        self._cache.share(handle.id, shared)
        logits = self._decode([(t, j, handle.id, j == len(tokens) - 1) for j, t in enumerate(tokens) if j >= shared],
                              pad)
        self._cache.keep(handle.id, tokens)
        return [handle], logits

    def step(self, handles: Sequence[_Seq], tokens: Sequence[int]) -> np.ndarray:
        """One token per handle; logits after it [handles, vocab]."""
        return self.extend(handles, [[t] for t in tokens])

    def extend(self, handles: Sequence[_Seq], blocks: Sequence[Sequence[int]], pad: bool = True) -> np.ndarray:
        """A block per handle (at least one token each); logits after each block's last token [handles, vocab]."""
        entries = []
        for h, block in zip(handles, blocks, strict=True):
            if not block:
                raise ValueError("every block needs at least one token")
            entries += [(t, h.length + j, h.live(), j == len(block) - 1) for j, t in enumerate(block)]
        logits = self._decode(entries, pad)
        for h, block in zip(handles, blocks):
            h.length += len(block)
        return logits

    def fork(self, handles: Sequence[_Seq], lengths: Sequence[int] | None = None) -> list[_Seq]:
        """A new sequence id per handle sharing its first `lengths[i]` cells (`llama_memory_seq_cp`)."""
        lengths = [h.length for h in handles] if lengths is None else lengths
        return [self._fork(h, n) for h, n in zip(handles, lengths, strict=True)]

    def crop(self, handles: Sequence[_Seq], lengths: Sequence[int]) -> None:
        for h, n in zip(handles, lengths, strict=True):
            if not 0 < n <= h.length:
                raise ValueError(f"cannot crop a sequence of {h.length} tokens to {n}")
            C.llama_memory_seq_rm(self._mem, h.live(), n, -1)
            h.length = n

    def drop(self, handles: Sequence[_Seq]) -> None:
        for h in handles:
            h.live()
            h.release()  # queued; `_flush` frees the cells before the next forward or fork
        if self._ctx is not None:
            self._flush()

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        with self.lock:
            yield

    def proposer(self, top_k: int, sample: bool = False, temperature: float = 1.0, top_p: float = 1.0,
                 seed: int | None = None, repetition_penalty: float = 1.0, no_repeat_ngram_size: int = 0) -> Proposer:
        return np_proposer.proposer(top_k, sample, temperature, top_p, seed, repetition_penalty, no_repeat_ngram_size)

    def answer_logodds(self, scores: np.ndarray, yes: Sequence[int], no: Sequence[int]) -> list[float]:
        return np_proposer.answer_logodds(scores, yes, no)

    def generate(self, ids: Sequence[int], *, max_new_tokens: int, n: int = 1, sample: bool = False,
                 top_p: float = 1.0, seed: int | None = None, stop: Sequence[str] = (),
                 repetition_penalty: float = 1.0, no_repeat_ngram_size: int = 0) -> list[Generated]:
        """Greedy decoding (or n samples at temperature 1, nucleus `top_p`) of n sequences decoded together.
        Repetition settings use transformers' processors, so both engines apply the same rules."""
        sampler = self.proposer(1, sample, 1.0, top_p, seed, repetition_penalty, no_repeat_ngram_size)
        with self.session():
            handles, logits = self.prefill([list(ids)], pad=not self._single_rows_exact)
            if n > 1:
                handles += self.fork(handles * (n - 1))
                logits = np.broadcast_to(logits, (n, logits.shape[-1]))
            new: list[list[int]] = [[] for _ in range(n)]
            logps, ended, live = [0.0] * n, [False] * n, list(range(n))
            while True:
                props = sampler.propose(logits, None, None, [list(ids) + new[i] for i in live] if
                                        sampler.rules else None)
                for i, prop in zip(live, props):
                    token, logp = sampler.candidates(prop)[0] if sample else (prop.greedy, prop.greedy_logp)
                    logps[i] += logp
                    if token in self.eos_token_ids:
                        ended[i] = True
                    else:
                        new[i].append(token)
                live = [i for i in live if not ended[i] and len(new[i]) < max_new_tokens
                        and not stopped(self.decode, new[i], 1, stop)]
                if not live:
                    self.drop(handles)
                    return [Generated(new[i], logps[i], ended[i]) for i in range(n)]
                logits = self.extend([handles[i] for i in live], [[new[i][-1]] for i in live],
                                     pad=not self._single_rows_exact)

    def continuation_logprobs(self, ids: Sequence[int], continuation: Sequence[int]) -> list[float]:
        """log P of each token of `continuation` after `ids`, in one forward."""
        full = list(ids) + list(continuation)
        with self.session():
            seq = _Seq(self, len(full))
            logits = self._decode([(t, j, seq.id, j >= len(ids) - 1 and j < len(full) - 1) for j, t in enumerate(full)])
            self.drop([seq])
            return np_proposer.token_logprobs(logits, continuation)


def _free_native(contexts: list[Any], model: Any) -> None:
    for ctx in contexts:
        C.llama_free(ctx)
    C.llama_model_free(model)
