"""Inference engines behind one protocol: `Backend` (see `base.py`); `LanguageModel` is the transformers one."""

from deal_core.backends.base import Backend, Generated, Proposal, Proposer, Rows

__all__ = ["Backend", "Generated", "Proposal", "Proposer", "Rows"]
