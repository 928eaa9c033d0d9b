"""The transformers backend: a `PreTrainedModel` and its tokenizer behind the `Backend` protocol.

Rows are `KVBatch`es: sequences sharing one `DynamicCache`. Rows hold left padding and, after an early EOS,
trailing holes; both are masked out and position ids count only real tokens, so every row computes exactly what
it would compute alone.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from jinja2 import TemplateError
from transformers import (
    DynamicCache,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from deal_core.backends.base import Generated
from deal_core.backends.proposer import TorchScored, answer_logodds
from deal_core.errors import PromptError


def _padded(sequences: Sequence[Sequence[int]], pad_id: int, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids [rows, width] padded with `pad_id` on the left or right, and the mask of real tokens."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, seq in enumerate(sequences):
        span = slice(width - len(seq), width) if left else slice(0, len(seq))
        ids[i, span] = torch.tensor(seq, dtype=torch.long)
        mask[i, span] = 1
    return ids, mask


@dataclass
class KVBatch:
    """Rows of sequences on one KV cache, and the mask of their real tokens [rows, length]."""

    model: PreTrainedModel
    cache: DynamicCache
    mask: torch.Tensor

    @property
    def length(self) -> int:
        return self.mask.shape[1]

    @property
    def size(self) -> int:
        return self.mask.shape[0]

    def _run(self, ids: torch.Tensor, block: torch.Tensor, **kwargs: Any) -> Any:
        """Feed `ids` [rows, width] whose real tokens are `block`; positions continue each row's real tokens."""
        positions = self.mask.sum(-1, keepdim=True) + (block.cumsum(-1) - 1).clamp(min=0)
        self.mask = torch.cat([self.mask, block], dim=1)
        out = self.model(input_ids=ids, attention_mask=self.mask, position_ids=positions, cache=self.cache,
                         use_cache=True, **kwargs)
        self.cache = out.cache
        return out.logits


@dataclass(eq=False)
class LanguageModel(TorchScored):
    """A causal LM and its tokenizer: the transformers implementation of `deal_core.backends.Backend`."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str
    eos_token_ids: frozenset[int] = field(default_factory=frozenset)
    pad_token_id: int = 0
    # Forwards on one model object are not thread-safe in combination with our cache surgery; calls take turns.
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def __post_init__(self) -> None:
        self.model.eval()
        if not self.eos_token_ids:
            ids: set[int] = set()
            for source in (getattr(self.model.generation_config, "eos_token_id", None), self.tokenizer.eos_token_id):
                if isinstance(source, int):
                    ids.add(source)
                elif source:
                    ids.update(int(i) for i in source)
            self.eos_token_ids = frozenset(ids)
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = min(self.eos_token_ids) if self.eos_token_ids else 0
        self.pad_token_id = int(pad)

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def context_window(self) -> int:
        config = self.model.config.get_text_config()
        for attr in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            value = getattr(config, attr, None)
            if isinstance(value, int) and value > 0:
                return value
        return int(getattr(self.tokenizer, "model_max_length", 2048))

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    @property
    def renders_tools(self) -> bool:
        template = getattr(self.tokenizer, "chat_template", None)
        return isinstance(template, str) and "tools" in template

    @functools.cached_property
    def _grammar_tokenizer(self) -> Any:
        import llguidance.hf

        vocab = self.model.get_output_embeddings().weight.shape[0]  # the logits' width (may exceed the tokenizer's)
        return llguidance.hf.from_tokenizer(self.tokenizer, n_vocab=vocab, eos_token=sorted(self.eos_token_ids))

    def grammar_tokenizer(self) -> Any:
        with self.lock:
            return self._grammar_tokenizer

    # -- text <-> tokens ---------------------------------------------------------------------------------------
    def encode_chat(self, messages: Sequence[Mapping[str, Any]], *, continue_final: bool = False,
                    tools: Sequence[Mapping[str, Any]] | None = None) -> list[int]:
        try:
            out = self.tokenizer.apply_chat_template(
                list(messages), tools=list(tools) if tools else None, add_generation_prompt=not continue_final,
                continue_final_message=continue_final, tokenize=True, return_dict=True,
            )
        except TemplateError as exc:  # the template rejects these messages (roles, order, empty content)
            raise PromptError(f"model {self.name!r}'s chat template rejected the messages: {exc}") from None
        return list(out["input_ids"])

    def render_chat(self, messages: Sequence[Mapping[str, Any]]) -> str:
        return self.tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)

    def encode_text(self, text: str, *, special_tokens: bool = True) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=special_tokens)["input_ids"])

    def decode(self, ids: Sequence[int], *, keep_special: bool = False) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=not keep_special)

    def decode_batch(self, sequences: Sequence[Sequence[int]]) -> list[str]:
        return self.tokenizer.batch_decode([list(s) for s in sequences], skip_special_tokens=True)

    # -- the forward verbs ------------------------------------------------------------------------------------
    def prefill(self, sequences: Sequence[Sequence[int]]) -> tuple[KVBatch, torch.Tensor]:
        """Encode left-padded prompts once; returns the rows and next-token logits [rows, vocab]."""
        ids, mask = _padded(sequences, self.pad_token_id, left=True)
        rows = KVBatch(self.model, DynamicCache(config=self.model.config), mask[:, :0].to(self.device))
        logits = rows._run(ids.to(self.device), mask.to(self.device), logits_to_keep=1)
        return rows, logits[:, -1, :]

    def step(self, rows: KVBatch, tokens: Sequence[int], real: Sequence[bool]) -> torch.Tensor:
        """Append one token per row (`real[i]` False feeds a masked hole) and return logits [rows, vocab]."""
        device = rows.mask.device
        block = torch.tensor(real, dtype=rows.mask.dtype, device=device).unsqueeze(1)
        ids = torch.tensor(tokens, dtype=torch.long, device=device).unsqueeze(1)
        return rows._run(ids, block)[:, -1, :]

    def extend(self, rows: KVBatch, blocks: Sequence[Sequence[int]]) -> torch.Tensor:
        """Append a block of tokens per row (right-padded; the padding is masked) and return the logits after each
        row's last token [rows, vocab]. Rows may differ in length; every row needs at least one token."""
        device = rows.mask.device
        ids, block = _padded(blocks, self.pad_token_id, left=False)
        last = [len(r) - 1 for r in blocks]
        keep = sorted(set(last))  # project only the positions we read onto the vocabulary
        logits = rows._run(ids.to(device), block.to(device=device, dtype=rows.mask.dtype),
                           logits_to_keep=torch.tensor(keep, device=device))
        column = torch.tensor([keep.index(j) for j in last], device=device)
        return logits[torch.arange(len(blocks), device=device), column]

    def gather(self, picks: Sequence[tuple[KVBatch, int]], length: int) -> KVBatch:
        """New rows whose row i is row `picks[i][1]` of `picks[i][0]`, cut to its first `length` columns."""
        batches = list({id(batch): batch for batch, _ in picks}.values())
        offsets, total = {}, 0
        for batch in batches:
            offsets[id(batch)] = total
            total += batch.size
        index = torch.tensor([offsets[id(batch)] + row for batch, row in picks], device=batches[0].mask.device)

        def take(tensors: list[torch.Tensor]) -> torch.Tensor:
            cut = [t[..., :length, :] for t in tensors]
            return (cut[0] if len(cut) == 1 else torch.cat(cut, dim=0)).index_select(0, index)

        layers = [
            (take([b.cache.layers[i].keys for b in batches]), take([b.cache.layers[i].values for b in batches]))
            for i in range(len(batches[0].cache.layers))
        ]
        masks = [b.mask[:, :length] for b in batches]
        mask = (masks[0] if len(masks) == 1 else torch.cat(masks, dim=0)).index_select(0, index)
        return KVBatch(self.model, DynamicCache(layers, config=self.model.config), mask)

    def pad(self, rows: KVBatch, length: int) -> KVBatch:
        """The same rows with masked columns added on the left up to `length` (positions count real tokens only,
        so nothing they compute changes): lines up caches of different lengths before `gather` joins them."""
        extra = length - rows.length
        if extra <= 0:
            return rows

        def left(t: torch.Tensor) -> torch.Tensor:
            return torch.cat([t.new_zeros((*t.shape[:-2], extra, t.shape[-1])), t], dim=-2)

        layers = [(left(layer.keys), left(layer.values)) for layer in rows.cache.layers]
        mask = torch.cat([rows.mask.new_zeros((rows.size, extra)), rows.mask], dim=1)
        return KVBatch(self.model, DynamicCache(layers, config=self.model.config), mask)

    def answer_logodds(self, scores: torch.Tensor, yes: Sequence[int], no: Sequence[int]) -> list[float]:
        return answer_logodds(scores, yes, no)

    def generate(self, ids: Sequence[int], *, max_new_tokens: int, n: int = 1, sample: bool = False,
                 top_p: float = 1.0, seed: int | None = None, stop: Sequence[str] = (),
                 repetition_penalty: float = 1.0, no_repeat_ngram_size: int = 0) -> list[Generated]:
        """transformers' own decoding loop (`model.generate`): greedy, or n samples at temperature 1."""
        if seed is not None:
            torch.manual_seed(seed)
        with self.session():
            out = self.model.generate(
                torch.tensor([list(ids)], device=self.device),
                attention_mask=torch.ones((1, len(ids)), dtype=torch.long, device=self.device),
                max_new_tokens=max_new_tokens, do_sample=sample, num_return_sequences=n, top_k=None,
                top_p=top_p if sample else None, temperature=1.0 if sample else None,
                pad_token_id=self.pad_token_id, eos_token_id=sorted(self.eos_token_ids),
                stop_strings=list(stop) or None, tokenizer=self.tokenizer if stop else None,
                output_scores=True, return_dict_in_generate=True,
                repetition_penalty=repetition_penalty if repetition_penalty != 1.0 else None,
                no_repeat_ngram_size=no_repeat_ngram_size or None,
            )
        new = out.sequences[:, len(ids):]
        # log-probability of each emitted token (one step at a time: n × steps × vocab would not fit for large n)
        picked = torch.stack([torch.log_softmax(score.float(), -1).gather(1, new[:, j: j + 1])[:, 0]
                              for j, score in enumerate(out.scores)], 1).tolist()
        results = []
        for tokens, logps in zip(new.tolist(), picked):
            ended = next((j for j, t in enumerate(tokens) if t in self.eos_token_ids), None)
            scored = len(tokens) if ended is None else ended + 1  # the EOS token counts; the padding after it not
            results.append(Generated(tokens[:ended], sum(logps[:scored]), ended is not None))
        return results

    def continuation_logprobs(self, ids: Sequence[int], continuation: Sequence[int]) -> list[float]:
        """log P of each token of `continuation` after `ids`, in one forward."""
        full = torch.tensor([list(ids) + list(continuation)], device=self.device)
        with self.session():
            logits = self.model(full).logits[0, len(ids) - 1: -1].float()
            logp = torch.log_softmax(logits, -1)
            picked = logp.gather(1, torch.tensor(list(continuation), device=self.device)[:, None])
        return picked[:, 0].tolist()
