"""A long prompt's prefill in pieces, one piece per turn of the run loop, so that a call with a long prompt does not
stop every other call in flight for the whole of its prefill (on llama.cpp's CPU kernels a 2,048-token prompt takes
~11 s). The engine decides the piece (`Isolating.prefill_piece`: llama.cpp splits a prompt at the same places
itself, so the pieces give the cells and bits the whole prefill gives); the last piece is the search's admission,
which reads its logits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deal_core.backends.base import Backend


@dataclass(eq=False)
class Prefill:
    """A call's prompt (`ids`) being prefilled in `piece`-token pieces: `fed` tokens are in `handle` so far."""

    ticket: Any
    ids: list[int]
    piece: int
    handle: Any = None
    fed: int = 0

    def advance(self, lm: Backend) -> bool:
        """Feed the next piece; True when only the last piece is left."""
        piece = self.ids[self.fed:self.fed + self.piece]
        with lm.session():
            if self.handle is None:
                (self.handle,), _ = lm.prefill([piece])
            else:
                lm.extend([self.handle], [piece])
        self.fed += len(piece)
        return self.ready

    @property
    def ready(self) -> bool:
        return len(self.ids) - self.fed <= self.piece

    def drop(self, lm: Backend) -> None:
        if self.handle is not None:
            with lm.session():
                lm.drop([self.handle])
            self.handle = None
