"""A batch of sequences sharing one KV cache: forward one token per row, select and crop rows.

Rows hold left padding and, after an early EOS, trailing holes; both are masked out and position ids count only
real tokens, so every row computes exactly what it would compute alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import DynamicCache

from deal_core.model import LanguageModel


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
    lm: LanguageModel
    cache: DynamicCache
    mask: torch.Tensor  # [rows, length], 1 = real token

    @property
    def length(self) -> int:
        return self.mask.shape[1]

    @classmethod
    def prefill(cls, lm: LanguageModel, sequences: Sequence[Sequence[int]]) -> tuple[KVBatch, torch.Tensor]:
        """Encode left-padded prompts once; returns the batch and next-token logits [rows, vocab]."""
        ids, mask = _padded(sequences, lm.pad_token_id, left=True)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=lm.model.config)
        out = lm.model(
            input_ids=ids.to(lm.device),
            attention_mask=mask.to(lm.device),
            position_ids=positions.to(lm.device),
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return cls(lm, out.cache, mask.to(lm.device)), out.logits[:, -1, :]

    def forward(self, tokens: Sequence[int], real: Sequence[bool]) -> torch.Tensor:
        """Append one token per row (`real[i]` False feeds a masked hole) and return logits [rows, vocab]."""
        device = self.mask.device
        positions = self.mask.sum(-1, keepdim=True)
        column = torch.tensor(real, dtype=self.mask.dtype, device=device).unsqueeze(1)
        self.mask = torch.cat([self.mask, column], dim=1)
        out = self.lm.model(
            input_ids=torch.tensor(tokens, dtype=torch.long, device=device).unsqueeze(1),
            attention_mask=self.mask,
            position_ids=positions,
            cache=self.cache,
            use_cache=True,
        )
        self.cache = out.cache
        return out.logits[:, -1, :]

    def extend(self, rows: Sequence[Sequence[int]]) -> torch.Tensor:
        """Append a block of tokens per row (right-padded; the padding is masked) and return the logits after each
        row's last token [rows, vocab]. Rows may differ in length; every row needs at least one token."""
        device = self.mask.device
        ids, block = _padded(rows, self.lm.pad_token_id, left=False)
        block = block.to(device=device, dtype=self.mask.dtype)
        positions = self.mask.sum(-1, keepdim=True) + (block.cumsum(-1) - 1).clamp(min=0)
        self.mask = torch.cat([self.mask, block], dim=1)
        last = [len(r) - 1 for r in rows]
        keep = sorted(set(last))  # project only the positions we read onto the vocabulary
        out = self.lm.model(
            input_ids=ids.to(device),
            attention_mask=self.mask,
            position_ids=positions,
            cache=self.cache,
            use_cache=True,
            logits_to_keep=torch.tensor(keep, device=device),
        )
        self.cache = out.cache
        column = torch.tensor([keep.index(j) for j in last], device=device)
        return out.logits[torch.arange(len(rows), device=device), column]

    @staticmethod
    def gather(picks: Sequence[tuple[KVBatch, int]], length: int) -> KVBatch:
        """A new batch whose row i is row `picks[i][1]` of batch `picks[i][0]`, cut to its first `length` columns."""
        batches = list({id(batch): batch for batch, _ in picks}.values())
        offsets, total = {}, 0
        for batch in batches:
            offsets[id(batch)] = total
            total += batch.mask.shape[0]
        device = batches[0].mask.device
        index = torch.tensor([offsets[id(batch)] + row for batch, row in picks], device=device)

        def take(tensors: list[torch.Tensor]) -> torch.Tensor:
            cut = [t[..., :length, :] for t in tensors]
            return (cut[0] if len(cut) == 1 else torch.cat(cut, dim=0)).index_select(0, index)

        layers = [
            (take([b.cache.layers[i].keys for b in batches]), take([b.cache.layers[i].values for b in batches]))
            for i in range(len(batches[0].cache.layers))
        ]
        masks = [b.mask[:, :length] for b in batches]
        mask = (masks[0] if len(masks) == 1 else torch.cat(masks, dim=0)).index_select(0, index)
        lm = batches[0].lm
        return KVBatch(lm, DynamicCache(layers, config=lm.model.config), mask)
