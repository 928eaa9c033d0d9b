"""The transformers backend: a `PreTrainedModel` and its tokenizer behind the `Backend` protocol.

Sequence handles are rows of a dense, left-padded KV batch that stays inside the backend (`kv_batch.py`: padding,
holes and masks never cross the seam; position ids count only real tokens, so every row computes exactly what it
would compute alone).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from jinja2 import TemplateError
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from deal_core.backends import kv_batch
from deal_core.backends.base import Generated
from deal_core.backends.proposer import TorchScored, answer_logodds
from deal_core.errors import PromptError


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
    # a row's log-probs agree alone and in any batch within 5e-4 and its choices are the same (fp32 on the CPU:
    # tests/unit/test_backend_conformance.py, test_scheduler.py); not measured on GPUs
    batch_invariant: bool = True

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
    def prefill(self, sequences: Sequence[Sequence[int]]) -> tuple[list[kv_batch.Seq], torch.Tensor]:
        """Encode the prompts at once (left-padded, one new group); their handles and logits [handles, vocab]."""
        if not sequences or not all(sequences):
            raise PromptError("every prompt needs at least one token")
        return kv_batch.prefill(self.model, sequences, self.pad_token_id)

    def step(self, handles: Sequence[kv_batch.Seq], tokens: Sequence[int]) -> torch.Tensor:
        """One token per handle; logits [handles, vocab]."""
        return kv_batch.feed(handles, [[t] for t in tokens], self.pad_token_id)

    def extend(self, handles: Sequence[kv_batch.Seq], blocks: Sequence[Sequence[int]]) -> torch.Tensor:
        """A block per handle (lengths may differ, at least one token each); logits after each block's last token."""
        return kv_batch.feed(handles, blocks, self.pad_token_id)

    def fork(self, handles: Sequence[kv_batch.Seq], lengths: Sequence[int] | None = None) -> list[kv_batch.Seq]:
        return kv_batch.fork(handles, [h.length for h in handles] if lengths is None else lengths)

    def crop(self, handles: Sequence[kv_batch.Seq], lengths: Sequence[int]) -> None:
        kv_batch.crop(handles, lengths)

    def drop(self, handles: Sequence[kv_batch.Seq]) -> None:
        kv_batch.drop(handles)

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
