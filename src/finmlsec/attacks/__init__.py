"""Attacks: each a registered class with ``run(oracle, data) -> AttackResult``."""

from finmlsec.attacks.base import (
    ATTACKS,
    Attack,
    AttackData,
    AttackResult,
    Labeled,
    check_needs,
    params_of,
)

__all__ = [
    "ATTACKS",
    "Attack",
    "AttackData",
    "AttackResult",
    "Labeled",
    "check_needs",
    "params_of",
]
