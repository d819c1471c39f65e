"""The paper's threat model: types, attacker reach, the Table 2 catalogue and the risk decision.

Public entry: :func:`analyze` (``analyze(spec) -> Analysis``).
"""

from finmlsec.threatmodel.analysis import Analysis, Threat, analyze, type_table
from finmlsec.threatmodel.catalogue import load_catalogue
from finmlsec.threatmodel.types import DATA, EXCLUDED, TYPES

__all__ = [
    "DATA",
    "EXCLUDED",
    "TYPES",
    "Analysis",
    "Threat",
    "analyze",
    "load_catalogue",
    "type_table",
]
