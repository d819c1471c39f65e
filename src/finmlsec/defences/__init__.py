"""Countermeasures of the paper as reusable, scikit-learn compatible components."""

from finmlsec.defences.base import COUNTERMEASURES, DEFENCES, STAGES, Defence

__all__ = ["COUNTERMEASURES", "DEFENCES", "STAGES", "Defence"]
