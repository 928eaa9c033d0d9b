"""The transformers backend's dense KV batch, kept behind the seam's sequence handles.

A `Group` is rows of sequences on one `DynamicCache` [rows, heads, width, dim] and the mask of their real tokens
[rows, width]. Rows are left-padded; a row that is not fed while others are, or that is cropped, gets masked holes;
position ids count real tokens only, so every row computes exactly what it would compute alone. A `Seq` (the
handle) is one row of one group. Feeding handles of several groups, or a few rows of a large group, first copies
the fed rows into a new group; forking copies rows into a new group. Both compact: each row's real tokens are copied
right-aligned, so holes and dropped rows do not pile up.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import DynamicCache, PreTrainedModel


def padded(sequences: Sequence[Sequence[int]], pad_id: int, left: bool, rows: int | None = None,
           at: Sequence[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids [rows, width] padded with `pad_id` on the left or right, and the mask of real tokens. With `at`,
    sequence i goes to row `at[i]` of `rows` (the other rows get only padding)."""
    width = max(len(s) for s in sequences)
    rows = len(sequences) if rows is None else rows
    ids, mask = [[pad_id] * width for _ in range(rows)], [[0] * width for _ in range(rows)]
    for i, seq in enumerate(sequences):
        r = i if at is None else at[i]
        start = width - len(seq) if left else 0
        ids[r][start: start + len(seq)] = seq
        mask[r][start: start + len(seq)] = [1] * len(seq)
    return torch.tensor(ids, dtype=torch.long), torch.tensor(mask, dtype=torch.long)


class Seq:
    """A handle: row `row` of `group`, holding `length` real tokens (`group` is None once dropped)."""

    __slots__ = ("group", "length", "row")

    def __init__(self, group: Group, row: int, length: int):
        self.group: Group | None = group
        self.row, self.length = row, length

    def at(self) -> Group:
        if self.group is None:
            raise ValueError("a dropped sequence handle was used")
        return self.group


class Group:
    """Rows of sequences on one KV cache and the mask of their real tokens. A group lives while a handle holds it;
    rows whose handles moved on or were dropped are dead weight until then."""

    def __init__(self, model: PreTrainedModel, cache: DynamicCache, mask: torch.Tensor):
        self.model, self.cache, self.mask = model, cache, mask

    @property
    def size(self) -> int:
        return self.mask.shape[0]

    def run(self, ids: torch.Tensor, block: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """Feed `ids` [rows, width] whose real tokens are `block`; positions continue each row's real tokens."""
        positions = self.mask.sum(-1, keepdim=True) + (block.cumsum(-1) - 1).clamp(min=0)
        self.mask = torch.cat([self.mask, block], dim=1)
        out = self.model(input_ids=ids, attention_mask=self.mask, position_ids=positions, cache=self.cache,
                         use_cache=True, **kwargs)
        self.cache = out.cache
        return out.logits


def prefill(model: PreTrainedModel, sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[list[Seq], Any]:
    """A new group of left-padded sequences; their handles and the logits after each one's last token."""
    ids, mask = padded(sequences, pad_id, left=True)
    device = model.device
    group = Group(model, DynamicCache(config=model.config), mask[:, :0].to(device))
    logits = group.run(ids.to(device), mask.to(device), logits_to_keep=1)
    return [Seq(group, i, len(s)) for i, s in enumerate(sequences)], logits[:, -1, :]


def feed(handles: Sequence[Seq], blocks: Sequence[Sequence[int]], pad_id: int) -> torch.Tensor:
    """A block per handle (right-padded; rows of its group that are not fed get holes); the logits after each
    block's last token [handles, vocab]."""
    if len({id(h) for h in handles}) != len(handles) or not all(blocks):
        raise ValueError("one non-empty block per distinct handle")
    group = together(handles)
    device = group.mask.device
    ids, block = padded(blocks, pad_id, left=False, rows=group.size, at=[h.row for h in handles])
    last = [len(b) - 1 for b in blocks]
    keep = sorted(set(last))  # project only the positions we read onto the vocabulary
    logits = group.run(ids.to(device), block.to(device=device, dtype=group.mask.dtype),
                       logits_to_keep=torch.tensor(keep, device=device) if len(keep) > 1 or keep[0] else 1)
    for h, b in zip(handles, blocks):
        h.length += len(b)
    rows = torch.tensor([h.row for h in handles], device=device)
    return logits[rows, torch.tensor([keep.index(j) for j in last], device=device)]


def together(handles: Sequence[Seq]) -> Group:
    """The one group holding every handle: their group when they are more than half its rows, else a new one
    holding just them (handles moved; the rows left behind keep their group). A pass computes every row of its
    group, so rows that are not fed cost as much as fed ones: with prompts interleaved (each pass feeds the rows
    that wait for one) feeding a small part of a large group would compute the rest for nothing."""
    groups = list({id(g): g for g in (h.at() for h in handles)}.values())
    if len(groups) == 1 and 2 * len(handles) > groups[0].size:
        return groups[0]
    group = gather(groups[0].model, [(h, h.length) for h in handles])
    for row, h in enumerate(handles):
        h.group, h.row = group, row
    return group


def fork(handles: Sequence[Seq], lengths: Sequence[int]) -> list[Seq]:
    """Copies of the handles' rows, each cut to its first `lengths[i]` tokens, in a new group."""
    for h, n in zip(handles, lengths, strict=True):
        if not 0 < n <= h.length:
            raise ValueError(f"cannot fork {n} tokens of a sequence of {h.length}")
        h.at()
    group = gather(handles[0].at().model, list(zip(handles, lengths)))
    return [Seq(group, i, n) for i, n in enumerate(lengths)]


def crop(handles: Sequence[Seq], lengths: Sequence[int]) -> None:
    """Keep each handle's first `lengths[i]` real tokens (the rest become holes)."""
    for h, n in zip(handles, lengths, strict=True):
        if not 0 < n <= h.length:
            raise ValueError(f"cannot crop a sequence of {h.length} tokens to {n}")
        mask = h.at().mask
        mask[h.row] *= (mask[h.row].cumsum(0) <= n).to(mask.dtype)
        h.length = n


def drop(handles: Sequence[Seq]) -> None:
    for h in handles:
        h.at()
        h.group = None


def gather(model: PreTrainedModel, picks: Sequence[tuple[Seq, int]]) -> Group:
    """A new group whose row i holds the first `picks[i][1]` real tokens of handle `picks[i][0]`, right-aligned
    (left padding; holes left behind)."""
    width = max(n for _, n in picks)
    by_group: dict[int, list[int]] = {}
    for i, (h, _) in enumerate(picks):
        by_group.setdefault(id(h.at()), []).append(i)
    parts, masks, order = [], [], []
    for members in by_group.values():
        source = picks[members[0]][0].group
        rows = torch.tensor([picks[i][0].row for i in members], device=source.mask.device)
        counts = torch.tensor([picks[i][1] for i in members], device=source.mask.device)
        columns, mask = _columns(source.mask.index_select(0, rows), counts, width)
        parts.append((source, rows, columns))
        masks.append(mask)
        order += members
    layers = [(_take([s.cache.layers[j].keys for s, _, _ in parts], parts, order),
               _take([s.cache.layers[j].values for s, _, _ in parts], parts, order))
              for j in range(len(parts[0][0].cache.layers))]
    mask = _ordered(torch.cat(masks) if len(masks) > 1 else masks[0], order)
    return Group(model, DynamicCache(layers, config=model.config), mask)


def _columns(mask: torch.Tensor, counts: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, the source columns of its first `counts[i]` real tokens right-aligned in `width` columns (column 0
    where it is padding), and the new mask."""
    cum = mask.cumsum(-1)
    rows, cols = ((mask > 0) & (cum <= counts[:, None])).nonzero(as_tuple=True)
    target = width - counts[rows] + cum[rows, cols] - 1
    columns = torch.zeros((mask.shape[0], width), dtype=torch.long, device=mask.device)
    new = torch.zeros((mask.shape[0], width), dtype=mask.dtype, device=mask.device)
    columns[rows, target] = cols
    new[rows, target] = 1
    return columns, new


def _take(tensors: list[torch.Tensor], parts: list[tuple[Group, torch.Tensor, torch.Tensor]],
          order: list[int]) -> torch.Tensor:
    """One layer's keys or values [rows, heads, width, dim] of the picked rows and columns, in pick order."""
    taken = [t[rows[:, None], :, columns] for t, (_, rows, columns) in zip(tensors, parts)]  # [rows, width, h, d]
    return _ordered(torch.cat(taken) if len(taken) > 1 else taken[0], order).transpose(1, 2)


def _ordered(t: torch.Tensor, order: list[int]) -> torch.Tensor:
    """Rows grouped by source back in pick order (`order[k]`: the pick that row k is)."""
    if order == sorted(order):
        return t
    inverse = [0] * len(order)
    for k, i in enumerate(order):
        inverse[i] = k
    return t.index_select(0, torch.tensor(inverse, device=t.device))
