"""The reference backend: a scripted table model over a 24-word vocabulary, in pure Python.

The next-token distribution is a fixed function of the last two tokens, so the model is deterministic, cheap, and
shares nothing with transformers: if the search runs on it, the `Backend` seam is real. It is the smallest complete
implementation of the protocol (read it before writing an engine) and the first engine of the conformance suite
(tests/unit/test_backend_conformance.py) and of the oracle tests.
"""

from __future__ import annotations

import contextlib
import math
import random
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from deal_core.backends import Generated, Proposal
from deal_core.constraint import allowed_tokens
from deal_core.stops import stopped

WORDS = ["<pad>", "<eos>", "the", "a", "dog", "cat", "park", "runs", "sits", "in", "on", "big", "red", "sun",
         "and", "with", "blue", "sky", "eats", "toy", "kid", "ball", "tree", "."]
EOS, PAD = 1, 0


def next_logprobs(context: Sequence[int]) -> list[float]:
    """log P(next | context): a softmax of pseudo-random scores seeded by the last two tokens (PAD never)."""
    rng = random.Random(hash((tuple(context[-2:]), len(context) % 3)))
    scores = [rng.gauss(0.0, 2.0) for _ in WORDS]
    scores[PAD] = -math.inf
    top = max(scores)
    norm = top + math.log(sum(math.exp(s - top) for s in scores))
    return [s - norm for s in scores]


def masked(logp: Sequence[float], ok: Sequence[bool]) -> list[float]:
    """log-probabilities renormalized over the allowed tokens (the others -inf), as the transformers backend does."""
    top = max(v for v, a in zip(logp, ok) if a)
    norm = top + math.log(sum(math.exp(v - top) for v, a in zip(logp, ok) if a))
    return [v - norm if a else -math.inf for v, a in zip(logp, ok)]


class TableSeq:
    """A handle: the tokens of one sequence (None once dropped: using it then is a bug the table reports)."""

    def __init__(self, tokens: Sequence[int]):
        self.tokens: list[int] | None = list(tokens)

    @property
    def length(self) -> int:
        return len(self.live)

    @property
    def live(self) -> list[int]:
        if self.tokens is None:
            raise ValueError("a dropped sequence handle was used")
        return self.tokens


class TopK:
    def __init__(self, k: int):
        self.k = k

    def propose(self, scores: list[list[float]], rows: Sequence[int] | None = None,
                allowed: Sequence[Any] | None = None,
                histories: Sequence[Sequence[int]] | None = None) -> list[Proposal]:
        out = []
        picked = scores if rows is None else [scores[i] for i in rows]
        for i, logp in enumerate(picked):
            if allowed is not None and allowed[i] is not None:
                logp = masked(logp, allowed_tokens(allowed[i], len(logp)))
            order = [t for t in sorted(range(len(logp)), key=lambda t: (-logp[t], t))[: self.k] if logp[t] > -math.inf]
            out.append(Proposal(order, [logp[t] for t in order]))
        return out

    def candidates(self, proposal: Proposal) -> list[tuple[int, float]]:
        return list(zip(proposal.tokens, proposal.logps))


@dataclass(eq=False)
class TableBackend:
    name: str = "table"
    eos_token_ids: frozenset[int] = frozenset({EOS})
    lock: threading.RLock = field(default_factory=threading.RLock)
    context_window: int = 512
    has_chat_template: bool = True
    renders_tools: bool = False
    batch_invariant: bool = True
    forwards: int = 0
    held: int = 0  # sequences prefilled or forked and not dropped yet

    def encode_chat(self, messages: Sequence[Mapping[str, Any]], *, continue_final: bool = False,
                    tools: Sequence[Mapping[str, Any]] | None = None) -> list[int]:
        return self.encode_text(" ".join(str(m["content"]) for m in messages))

    def grammar_tokenizer(self) -> Any:
        raise NotImplementedError("the table backend has no grammar tokenizer: pass constraints to DeALSearch")

    def render_chat(self, messages: Sequence[Mapping[str, Any]]) -> str:
        return " ".join(str(m["content"]) for m in messages)

    def encode_text(self, text: str, *, special_tokens: bool = True) -> list[int]:
        return [WORDS.index(w) if w in WORDS else 2 + len(w) % 20 for w in text.lower().split()] or [2]

    def decode(self, ids: Sequence[int], *, keep_special: bool = False) -> str:
        return " ".join(WORDS[t] for t in ids if keep_special or t not in (EOS, PAD))

    def decode_batch(self, sequences: Sequence[Sequence[int]]) -> list[str]:
        return [self.decode(s) for s in sequences]

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        with self.lock:
            yield

    def proposer(self, top_k: int, sample: bool = False, temperature: float = 1.0, top_p: float = 1.0,
                 seed: int | None = None, repetition_penalty: float = 1.0, no_repeat_ngram_size: int = 0) -> TopK:
        assert not sample, "the table backend proposes top-k only"
        assert repetition_penalty == 1.0 and not no_repeat_ngram_size, "the table backend has no penalties"
        return TopK(top_k)

    def _scores(self, handles: Sequence[TableSeq]) -> list[list[float]]:
        self.forwards += 1
        return [next_logprobs(h.live) for h in handles]

    def prefill(self, sequences: Sequence[Sequence[int]]) -> tuple[list[TableSeq], list[list[float]]]:
        assert sequences and all(sequences), "every sequence needs a token"
        handles = [TableSeq(s) for s in sequences]
        self.held += len(handles)
        return handles, self._scores(handles)

    def step(self, handles: Sequence[TableSeq], tokens: Sequence[int]) -> list[list[float]]:
        assert len(handles) == len(tokens) and len({id(h) for h in handles}) == len(handles)
        for h, token in zip(handles, tokens):
            h.live.append(token)
        return self._scores(handles)

    def extend(self, handles: Sequence[TableSeq], blocks: Sequence[Sequence[int]]) -> list[list[float]]:
        assert len(handles) == len(blocks) and all(blocks)
        for h, block in zip(handles, blocks):
            h.live.extend(block)
        return self._scores(handles)

    def fork(self, handles: Sequence[TableSeq], lengths: Sequence[int] | None = None) -> list[TableSeq]:
        lengths = [h.length for h in handles] if lengths is None else lengths
        assert all(0 < n <= h.length for h, n in zip(handles, lengths))
        self.held += len(handles)
        return [TableSeq(h.live[:n]) for h, n in zip(handles, lengths)]

    def crop(self, handles: Sequence[TableSeq], lengths: Sequence[int]) -> None:
        for h, n in zip(handles, lengths):
            assert 0 < n <= h.length
            del h.live[n:]

    def drop(self, handles: Sequence[TableSeq]) -> None:
        for h in handles:
            h.live  # noqa: B018 - dropping twice is a bug too
            h.tokens = None
        self.held -= len(handles)

    def answer_logodds(self, scores: list[list[float]], yes: Sequence[int], no: Sequence[int]) -> list[float]:
        def mass(logp: list[float], ids: Sequence[int]) -> float:
            return math.log(sum(math.exp(logp[t]) for t in ids))

        return [mass(logp, yes) - mass(logp, no) for logp in scores]

    def generate(self, ids: Sequence[int], *, max_new_tokens: int, n: int = 1, sample: bool = False,
                 top_p: float = 1.0, seed: int | None = None, stop: Sequence[str] = (),
                 repetition_penalty: float = 1.0, no_repeat_ngram_size: int = 0) -> list[Generated]:
        assert repetition_penalty == 1.0 and not no_repeat_ngram_size, "the table backend has no penalties"
        seq, logp = list(ids), 0.0
        for _ in range(max_new_tokens):
            dist = next_logprobs(seq)
            token = max(range(len(dist)), key=lambda t: (dist[t], -t))
            logp += dist[token]
            if token == EOS:
                return [Generated(seq[len(ids):], logp, True)] * n
            seq.append(token)
            if stopped(self.decode, seq[len(ids):], 1, stop):
                break
        return [Generated(seq[len(ids):], logp, False)] * n

    def continuation_logprobs(self, ids: Sequence[int], continuation: Sequence[int]) -> list[float]:
        seq, out = list(ids), []
        for token in continuation:
            out.append(next_logprobs(seq)[token])
            seq.append(token)
        return out
