"""Countermeasures of the paper: defences of a model and serving guards.

Defences (:data:`DEFENCES`) are scikit-learn classifier meta-estimators around the model they
defend; :func:`apply` fits one around a model. Serving guards (:data:`GUARDS`) act on a client's
requests or on single inputs at the gateway (:mod:`finmlsec.defences.guards`). Every module of
this package registers its components when imported; importing the package imports them all.
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
from finmlsec.defences.guards import GUARDS, Guard, build_guard, measured, measured_class

__all__ = ["COUNTERMEASURES", "DEFENCES", "GUARDS", "STAGES", "Defence", "Guard",
           "InputScreening", "apply", "build_guard", "deployable", "measured", "measured_class"]

for _m in sorted(_pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _m.name != "base" and not _m.name.startswith("_"):
        _importlib.import_module(f"{__name__}.{_m.name}")
