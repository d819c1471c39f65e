"""Countermeasures of the paper as scikit-learn classifier meta-estimators.

Every module of this package registers its defences in :data:`DEFENCES` when imported; importing
the package imports them all. :func:`apply` fits a defence around a model.
"""

import importlib as _importlib
import pkgutil as _pkgutil

from finmlsec.defences.base import (
    COUNTERMEASURES,
    DEFENCES,
    STAGES,
    Defence,
    InputScreening,
    apply,
    deployable,
)

__all__ = ["COUNTERMEASURES", "DEFENCES", "STAGES", "Defence", "InputScreening", "apply",
           "deployable"]

for _m in sorted(_pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _m.name != "base" and not _m.name.startswith("_"):
        _importlib.import_module(f"{__name__}.{_m.name}")
