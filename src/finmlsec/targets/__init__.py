"""Targets (the models under test) and the oracle through which attacks reach them."""

from finmlsec.targets.base import SklearnTarget, Target, as_target
from finmlsec.targets.oracle import Access, Oracle

__all__ = ["Access", "Oracle", "SklearnTarget", "Target", "as_target"]
