"""Countermeasures of the paper as reusable, scikit-learn compatible components.

Every module of this package registers its defences in :data:`DEFENCES` when imported; importing
the package imports them all.
"""

import importlib as _importlib
import pkgutil as _pkgutil

from finmlsec.defences.base import COUNTERMEASURES, DEFENCES, STAGES, Defence

__all__ = ["COUNTERMEASURES", "DEFENCES", "STAGES", "Defence"]

for _m in sorted(_pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _m.name != "base" and not _m.name.startswith("_"):
        _importlib.import_module(f"{__name__}.{_m.name}")
