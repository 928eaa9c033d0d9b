"""The seam under the search: the few verbs DeAL needs from an inference engine, and nothing more.

The search, greedy decoding, the `Judge` reward and the benchmarks talk to a `Backend` only. The search works on
sequence handles: it prefills prompts, feeds one token (or a block) to just the sequences that need one, forks,
crops and drops them. Handles and next-token scores are the engine's own objects (a row of a KV batch, a llama.cpp
sequence id, logits): the search passes them back without looking inside. No padding, masks or columns cross the
seam; an engine that batches densely (transformers) pads and masks inside. One file per engine implements the
protocol: `transformers.py`, `llamacpp.py`, and `table.py` (the pure-Python reference).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Proposal:
    """What the model proposes at one position: its candidates, most likely first, with their log-probabilities.

    In sampling mode `tokens`/`logps` hold only the most likely token and `dist` the engine's full distribution,
    from which the proposer draws the candidates on demand."""

    tokens: list[int]
    logps: list[float]
    dist: Any = None

    @property
    def greedy(self) -> int:
        return self.tokens[0]

    @property
    def greedy_logp(self) -> float:
        return self.logps[0]


class Proposer(Protocol):
    """Turns an engine's next-token scores into proposals, and a proposal into a step's candidates."""

    def propose(self, scores: Any, rows: Sequence[int] | None = None,
                allowed: Sequence[Any] | None = None,
                histories: Sequence[Sequence[int]] | None = None) -> list[Proposal]: ...
    # all rows or `rows`; `allowed[i]` (a `Constraint.allowed()` bitmask, or None) masks the i-th proposed row;
    # `histories[i]` is its tokens so far (prompt + response), which repetition penalties look at

    def candidates(self, proposal: Proposal) -> list[tuple[int, float]]: ...


class Handle(Protocol):
    """One sequence the engine holds (its tokens fed so far and their cache), opaque to the search. Every handle
    has its own length: sequences of different prompts never line up."""

    @property
    def length(self) -> int: ...  # tokens fed so far


@dataclass(frozen=True)
class Generated:
    """One sequence from the engine's own decoding loop: new tokens (EOS excluded) and their total log-prob."""

    tokens: list[int]
    logp: float
    ended: bool  # stopped at an end-of-sequence token


@runtime_checkable
class Backend(Protocol):
    """What the search needs from a language model. Optional verbs are protocols of their own: `Judging`,
    `WholeSequence`."""

    name: str
    eos_token_ids: frozenset[int]
    lock: threading.RLock  # one search step, one judge call, one tokenization at a time per loaded model
    batch_invariant: bool  # a row's scores do not depend on the other rows of its pass: prompts may share passes

    @property
    def context_window(self) -> int: ...

    @property
    def has_chat_template(self) -> bool: ...

    @property
    def renders_tools(self) -> bool: ...  # the chat template lays out tools, tool calls and tool results itself

    def grammar_tokenizer(self) -> Any: ...  # the vocabulary as llguidance sees it, for output constraints

    # -- text <-> tokens ---------------------------------------------------------------------------------------
    def encode_chat(self, messages: Sequence[Mapping[str, Any]], *, continue_final: bool = False,
                    tools: Sequence[Mapping[str, Any]] | None = None) -> list[int]: ...

    def render_chat(self, messages: Sequence[Mapping[str, Any]]) -> str: ...  # the template's text, for judges

    def encode_text(self, text: str, *, special_tokens: bool = True) -> list[int]: ...

    def decode(self, ids: Sequence[int], *, keep_special: bool = False) -> str: ...

    def decode_batch(self, sequences: Sequence[Sequence[int]]) -> list[str]: ...

    # -- the forward verbs ------------------------------------------------------------------------------------
    def session(self) -> AbstractContextManager[Any]: ...  # holds the lock (and the engine's no-grad mode)

    def proposer(self, top_k: int, sample: bool = False, temperature: float = 1.0, top_p: float = 1.0,
                 seed: int | None = None, repetition_penalty: float = 1.0,
                 no_repeat_ngram_size: int = 0) -> Proposer: ...

    # Scores are one row per handle given, in order. A handle stays valid until it is dropped; every sequence it
    # holds has at least one token.
    def prefill(self, sequences: Sequence[Sequence[int]]) -> tuple[list[Handle], Any]: ...  # a handle per prompt

    def step(self, handles: Sequence[Handle], tokens: Sequence[int]) -> Any: ...  # one token per given handle

    def extend(self, handles: Sequence[Handle], blocks: Sequence[Sequence[int]]) -> Any: ...  # a block each;
    # the scores after each block's last token

    def fork(self, handles: Sequence[Handle], lengths: Sequence[int] | None = None) -> list[Handle]: ...  # a copy
    # of each handle (one may repeat), cut to its first `lengths[i]` tokens; the originals are untouched

    def crop(self, handles: Sequence[Handle], lengths: Sequence[int]) -> None: ...  # keep the first lengths[i]

    def drop(self, handles: Sequence[Handle]) -> None: ...  # the engine may reuse what they held


@runtime_checkable
class Judging(Protocol):
    """Optional verb: yes/no log-odds from next-token scores (the `Judge` reward asks the search's backend)."""

    def answer_logodds(self, scores: Any, yes: Sequence[int], no: Sequence[int]) -> list[float]: ...


@runtime_checkable
class Isolating(Protocol):
    """Optional verbs of an engine that is not batch-invariant: views of the same weights with caches of their own,
    so concurrent searches take turns without touching each other's numbers (llama.cpp)."""

    max_isolated: int  # views open at once
    capacity: tuple[int, int]  # what one view holds: sequences and KV cells (calls sharing a view fit in these)
    prefill_piece: int  # a longer prompt is prefilled this many tokens per turn of the run loop (prefill.py)

    def isolated(self) -> Backend: ...

    def close(self) -> None: ...  # on a view: its cache goes back to the model


@runtime_checkable
class WholeSequence(Protocol):
    """Optional verbs: the engine's own decoding loop (`DeAL.greedy`, the benchmarks' baselines) and the log-probs
    of a given continuation (benchmarks)."""

    def generate(self, ids: Sequence[int], *, max_new_tokens: int, n: int = 1, sample: bool = False,
                 top_p: float = 1.0, seed: int | None = None, stop: Sequence[str] = (),
                 repetition_penalty: float = 1.0, no_repeat_ngram_size: int = 0) -> list[Generated]: ...

    def continuation_logprobs(self, ids: Sequence[int], continuation: Sequence[int]) -> list[float]: ...
