"""The llama.cpp backend: a GGUF file run natively (4-bit kernels) through llama-cpp-python's low-level API.

One llama.cpp context holds every row as a sequence id in one unified KV cache. Forking a row is
`llama_memory_seq_cp` (the cells are shared, nothing is copied), cropping and dropping are `llama_memory_seq_rm`,
and every row keeps its own positions. So the search's columns are bookkeeping here: left padding and holes are
counted per row and never reach the engine. Logits are computed only for the positions the search reads.
Proposals come from the engine-neutral `LogitsProposer` (backends/proposer.py) on a torch tensor of the logits;
the chat template is the one in the GGUF metadata, rendered by transformers' renderer and tokenized by llama.cpp.
"""

from __future__ import annotations

import gc
import os
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from llama_cpp._logger import set_verbose

from deal_core.backends.base import Generated
from deal_core.backends.gguf_text import GGUFText
from deal_core.backends.llama_native import C
from deal_core.backends.proposer import TorchScored, answer_logodds
from deal_core.errors import ConfigError, ModelLoadError, PromptError

MAX_SEQUENCES = 256  # LLAMA_MAX_SEQ: sequence ids one llama.cpp context can hold at once
SCRATCH = MAX_SEQUENCES - 1  # the scratch sequence (see `_decode`); rows get the others


class _Seq:
    """One sequence id; when no row refers to it any more, its id is queued for release (cells dropped later, under
    the model's lock: a finalizer may run on another thread while llama.cpp is decoding)."""

    __slots__ = ("__weakref__", "id")

    def __init__(self, engine: LlamaCppModel):
        self.id = engine._acquire()
        weakref.finalize(self, engine._released.append, self.id)


@dataclass(eq=False)
class SeqRows:
    """Rows as sequence ids. Columns are the search's bookkeeping: row i has `pads[i]` columns of left padding and
    holes at columns `holes[i]`; its real tokens (positions 0..fed-1 in its sequence) fill the other columns."""

    seqs: list[_Seq]
    pads: list[int]
    holes: list[tuple[int, ...]]
    length: int

    @property
    def size(self) -> int:
        return len(self.seqs)

    def fed(self, i: int, length: int | None = None) -> int:
        """Real tokens of row i in its first `length` columns (all columns by default)."""
        length = self.length if length is None else length
        return max(0, length - self.pads[i] - sum(h < length for h in self.holes[i]))


@dataclass(eq=False)
class LlamaCppModel(GGUFText, TorchScored):
    """A GGUF model in a llama.cpp context: the llama.cpp implementation of `deal_core.backends.Backend` (its text
    side, tokens and chat template, in `gguf_text.py`)."""

    path: Path
    name: str
    n_ctx: int = 8192  # KV cells shared by all live rows (a prefix shared by forked rows counts once)
    n_batch: int = 512
    n_threads: int = 0  # 0: the CPUs this process may use
    eos_token_ids: frozenset[int] = frozenset()
    pad_token_id: int = 0
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

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
        threads = self.n_threads or len(os.sched_getaffinity(0))
        cparams = C.llama_context_default_params()
        cparams.n_ctx, cparams.n_batch, cparams.n_ubatch = self.n_ctx, self.n_batch, self.n_batch
        cparams.n_seq_max, cparams.n_outputs_max, cparams.kv_unified = MAX_SEQUENCES, MAX_SEQUENCES, True
        cparams.n_threads = cparams.n_threads_batch = threads
        cparams.no_perf = True
        # Flash attention off: on the CPU it returned logits 0.5-1 nats off for a row whose cells lie between other
        # rows' cells in the unified cache (tests/unit/test_backend_conformance.py caught it; llama.cpp 0.3.36)
        cparams.flash_attn_type = C.LLAMA_FLASH_ATTN_TYPE_DISABLED
        self._ctx = C.llama_init_from_model(self._model, cparams)
        if not self._ctx:
            C.llama_model_free(self._model)
            raise ModelLoadError(f"llama.cpp could not create a context of {self.n_ctx} cells for {self.path}")
        weakref.finalize(self, _free_native, self._ctx, self._model)
        self._mem = C.llama_get_memory(self._ctx)
        self._vocab = C.llama_model_get_vocab(self._model)
        self.n_vocab = C.llama_vocab_n_tokens(self._vocab)
        self._free = list(range(SCRATCH - 1, -1, -1))
        self._released: list[int] = []
        self._batch = C.llama_batch_init(self.n_batch, 0, 1)
        weakref.finalize(self, C.llama_batch_free, self._batch)
        if not self.eos_token_ids:
            ids = {C.llama_vocab_eos(self._vocab), C.llama_vocab_eot(self._vocab)}
            self.eos_token_ids = frozenset(int(i) for i in ids if i >= 0)
        pad = C.llama_vocab_pad(self._vocab)
        self.pad_token_id = int(pad) if pad >= 0 else min(self.eos_token_ids, default=0)
        template = C.llama_model_chat_template(self._model, None)
        self.chat_template = template.decode() if template else None

    # -- sequence ids ------------------------------------------------------------------------------------------
    def _flush(self) -> None:
        while self._released:
            seq = self._released.pop()
            C.llama_memory_seq_rm(self._mem, seq, -1, -1)
            self._free.append(seq)

    def _acquire(self) -> int:
        self._flush()
        if not self._free:
            gc.collect()  # rows caught in reference cycles
            self._flush()
        if not self._free:
            raise ConfigError(f"the llama.cpp engine holds at most {SCRATCH} rows at once (prompts × "
                              "beam_width × top_k, all searches together): lower top_k, beam_width or concurrency")
        return self._free.pop()

    def _fork(self, src: int, length: int) -> _Seq:
        seq = _Seq(self)
        C.llama_memory_seq_cp(self._mem, src, seq.id, 0, length)
        return seq

    # -- the forward pass --------------------------------------------------------------------------------------
    def _decode(self, entries: Sequence[tuple[int, int, int, bool]]) -> torch.Tensor:
        """Feed (token, position, sequence id, wants logits) entries; the logits of those that want them, in order.

        llama.cpp's CPU kernels round differently for one row than for several (a matrix-vector product against a
        matrix product: up to 0.7 nats on a log-probability, measured on the embedded model), so a row's scores would
        depend on what else is in its batch. Every pass therefore has at least two token rows and two outputs: a
        scratch token at position 0 of a scratch sequence fills in, and every row computes exactly what it computes
        in any other batch."""
        self._flush()
        out, start = [], 0
        while start < len(entries):
            chunk, outputs = [], 0
            for entry in entries[start:]:
                if len(chunk) == self.n_batch - 1 or outputs + entry[3] > MAX_SEQUENCES - 1:
                    break
                chunk.append(entry)
                outputs += entry[3]
            start += len(chunk)
            scratch = len(chunk) < 2 or outputs < 2
            if scratch:
                C.llama_memory_seq_rm(self._mem, SCRATCH, -1, -1)
                chunk.append((0, 0, SCRATCH, True))
            self._run(chunk)
            wanted = outputs + scratch
            if wanted:
                ptr = C.llama_get_logits(self._ctx)
                logits = np.ctypeslib.as_array(ptr, shape=(wanted, self.n_vocab))[:outputs]
                out.append(torch.from_numpy(logits.copy()))
        if not out:
            return torch.empty((0, self.n_vocab))
        return out[0] if len(out) == 1 else torch.cat(out)

    def _run(self, chunk: Sequence[tuple[int, int, int, bool]]) -> None:
        b = self._batch
        for j, (token, pos, seq, logits) in enumerate(chunk):
            b.token[j], b.pos[j], b.n_seq_id[j], b.logits[j] = token, pos, 1, logits
            b.seq_id[j][0] = seq
        b.n_tokens = len(chunk)
        rc = C.llama_decode(self._ctx, b)
        if rc == 1:  # no room in the KV cache: rows that reference cycles still hold may free some
            gc.collect()
            self._flush()
            rc = C.llama_decode(self._ctx, b)
        if rc == 1:
            raise ConfigError(f"llama.cpp's KV cache is full: it holds n_ctx={self.n_ctx} tokens for all rows "
                              "together; load the model with a larger n_ctx or run fewer prompts at once")
        if rc != 0:
            raise RuntimeError(f"llama_decode failed (code {rc})")

    def _scatter(self, size: int, rows: Sequence[int], logits: torch.Tensor) -> torch.Tensor:
        """[size, vocab] with `logits` in `rows` and NaN elsewhere (rows that were not fed have no scores)."""
        if len(rows) == size:
            return logits
        full = torch.full((size, self.n_vocab), torch.nan)
        full[list(rows)] = logits
        return full

    # -- the forward verbs ------------------------------------------------------------------------------------
    def prefill(self, sequences: Sequence[Sequence[int]]) -> tuple[SeqRows, torch.Tensor]:
        """Each sequence in its own sequence id; logits after each one's last token [rows, vocab]."""
        if not sequences or any(len(s) == 0 for s in sequences):
            raise PromptError("every prompt needs at least one token")
        seqs = [_Seq(self) for _ in sequences]
        entries = [(t, j, seq.id, j == len(s) - 1) for seq, s in zip(seqs, sequences) for j, t in enumerate(s)]
        width = max(len(s) for s in sequences)
        rows = SeqRows(seqs, [width - len(s) for s in sequences], [()] * len(sequences), width)
        return rows, self._decode(entries)

    def step(self, rows: SeqRows, tokens: Sequence[int], real: Sequence[bool]) -> torch.Tensor:
        """One token per real row (the others get a hole column); logits [rows, vocab], NaN in rows not fed."""
        fed = [i for i, r in enumerate(real) if r]
        entries = [(tokens[i], rows.fed(i), rows.seqs[i].id, True) for i in fed]
        for i, r in enumerate(real):
            if not r:
                rows.holes[i] = (*rows.holes[i], rows.length)
        rows.length += 1
        return self._scatter(rows.size, fed, self._decode(entries))

    def extend(self, rows: SeqRows, blocks: Sequence[Sequence[int]]) -> torch.Tensor:
        """A block per row (at least one token each); logits after each row's last token [rows, vocab]."""
        width = max(len(b) for b in blocks)
        entries = []
        for i, block in enumerate(blocks):
            fed = rows.fed(i)
            entries += [(t, fed + j, rows.seqs[i].id, j == len(block) - 1) for j, t in enumerate(block)]
            rows.holes[i] = (*rows.holes[i], *range(rows.length + len(block), rows.length + width))
        rows.length += width
        return self._decode(entries)

    def gather(self, picks: Sequence[tuple[SeqRows, int]], length: int) -> SeqRows:
        """New rows whose row i forks row `picks[i][1]` of `picks[i][0]`, cut to its first `length` columns."""
        seqs = [self._fork(rows.seqs[i].id, rows.fed(i, length)) for rows, i in picks]
        pads = [min(rows.pads[i], length) for rows, i in picks]
        holes = [tuple(h for h in rows.holes[i] if h < length) for rows, i in picks]
        return SeqRows(seqs, pads, holes, length)

    def pad(self, rows: SeqRows, length: int) -> SeqRows:
        """The same rows (forked) with `length - rows.length` more columns of left padding."""
        extra = max(0, length - rows.length)
        return SeqRows([self._fork(s.id, rows.fed(i)) for i, s in enumerate(rows.seqs)],
                       [p + extra for p in rows.pads], [tuple(h + extra for h in hs) for hs in rows.holes],
                       rows.length + extra)

    def answer_logodds(self, scores: torch.Tensor, yes: Sequence[int], no: Sequence[int]) -> list[float]:
        return answer_logodds(scores, yes, no)

    def generate(self, ids: Sequence[int], *, max_new_tokens: int, n: int = 1, sample: bool = False,
                 top_p: float = 1.0, seed: int | None = None, stop: Sequence[str] = (),
                 repetition_penalty: float = 1.0, no_repeat_ngram_size: int = 0) -> list[Generated]:
        """Greedy decoding (or n samples at temperature 1, nucleus `top_p`) of n sequences decoded together.
        Repetition settings use transformers' processors, so both engines apply the same rules."""
        sampler = self.proposer(1, sample, 1.0, top_p, seed, repetition_penalty, no_repeat_ngram_size)
        with self.session():
            rows, logits = self.prefill([list(ids)])
            if n > 1:
                rows = self.gather([(rows, 0)] * n, rows.length)
                logits = logits.expand(n, -1)
            new: list[list[int]] = [[] for _ in range(n)]
            logps, ended, live = [0.0] * n, [False] * n, list(range(n))
            while True:
                props = sampler.propose(logits, live, None, [list(ids) + new[i] for i in live] if
                                        sampler.rules else None)
                for i, prop in zip(live, props):
                    token, logp = sampler.candidates(prop)[0] if sample else (prop.greedy, prop.greedy_logp)
                    logps[i] += logp
                    if token in self.eos_token_ids:
                        ended[i] = True
                    else:
                        new[i].append(token)
                live = [i for i in live if not ended[i] and len(new[i]) < max_new_tokens
                        and not (stop and any(s in self.decode(new[i]) for s in stop))]
                if not live:
                    return [Generated(new[i], logps[i], ended[i]) for i in range(n)]
                logits = self.step(rows, [new[i][-1] if i in live else 0 for i in range(n)],
                                   [i in live for i in range(n)])

    def continuation_logprobs(self, ids: Sequence[int], continuation: Sequence[int]) -> list[float]:
        """log P of each token of `continuation` after `ids`, in one forward."""
        full = list(ids) + list(continuation)
        with self.session():
            seq = _Seq(self)
            logits = self._decode([(t, j, seq.id, j >= len(ids) - 1 and j < len(full) - 1) for j, t in enumerate(full)])
            logp = torch.log_softmax(logits.float(), -1)
            return logp.gather(1, torch.tensor(list(continuation))[:, None])[:, 0].tolist()


def _free_native(ctx: Any, model: Any) -> None:
    C.llama_free(ctx)
    C.llama_model_free(model)
