"""Inference engines behind one protocol: `Backend` (see `base.py`; optional verbs: `Judging`, `WholeSequence`,
`Isolating`). Engines: transformers.py (`LanguageModel`), llamacpp.py (`LlamaCppModel`; its text side in gguf_text.py),
table.py (the pure-Python reference). Proposers: proposer.py (torch; transformers, and llama.cpp's sampling and
repetition settings), np_proposer.py (numpy; llama.cpp)."""

from deal_core.backends.base import Backend, Generated, Handle, Isolating, Judging, Proposal, Proposer, WholeSequence

__all__ = ["Backend", "Generated", "Handle", "Isolating", "Judging", "Proposal", "Proposer", "WholeSequence"]
