"""Attacks: each a registered subclass of :class:`Attack` with ``run(oracle, data) -> AttackResult``.

Every module of this package registers its attacks in :data:`ATTACKS` when imported; importing the
package imports them all, so that ``ATTACKS`` is complete whatever the caller imported first.
"""

import importlib as _importlib
import pkgutil as _pkgutil

from finmlsec.attacks.base import (
    ATTACKS,
    INPUT_KINDS,
    Attack,
    AttackData,
    AttackResult,
    Labeled,
    Meter,
    Outcome,
    check_needs,
    params_of,
)

__all__ = [
    "ATTACKS",
    "INPUT_KINDS",
    "Attack",
    "AttackData",
    "AttackResult",
    "Labeled",
    "Meter",
    "Outcome",
    "check_needs",
    "params_of",
]

for _m in sorted(_pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _m.name != "base" and not _m.name.startswith("_"):
        _importlib.import_module(f"{__name__}.{_m.name}")
