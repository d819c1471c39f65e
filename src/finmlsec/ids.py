"""The paper's identifiers: roles, the data an attacker may reach, attacks (threats) and
countermeasures. A leaf module: the spec, the threat model, the attacks and the defences all name
things with these ids, and it imports nothing.

Example:
    >>> from finmlsec.ids import ROLE_ABBREV, ROLES
    >>> [ROLE_ABBREV[r] for r in ROLES]
    ['TDP', 'SU', 'MG', 'MO']
"""

from __future__ import annotations

from typing import Literal

RoleId = Literal["training_data_provider", "system_user", "model_generator", "model_operator"]

ROLES: tuple[RoleId, ...] = (
    "training_data_provider",
    "system_user",
    "model_generator",
    "model_operator",
)
"""The paper's four entities, in the order of its Table 1."""

ROLE_ABBREV: dict[str, str] = {
    "training_data_provider": "TDP",
    "system_user": "SU",
    "model_generator": "MG",
    "model_operator": "MO",
}

DataId = Literal["training_data", "model_io", "false_prediction_data"]

DATA_IDS: tuple[DataId, ...] = ("training_data", "model_io", "false_prediction_data")
"""What an attacker may reach (Table 2's first column)."""

ATTACK_IDS: tuple[str, ...] = (
    "infer_training_data",
    "generate_malicious_model",
    "dos_model_generator",
    "infer_model",
    "induce_false_prediction",
    "dos_model_operator",
    "dos_training_data_provider",
)
"""The paper's attacks (Table 2); a threat is an attack through one reachable data item."""

COUNTERMEASURE_IDS: tuple[str, ...] = (
    "non_confidential_data",
    "modify_training_data",
    "detect_malicious_training_data",
    "robust_algorithm",
    "screen_false_prediction_data",
    "modify_confidence",
    "pate",
    "detect_malicious_input",
    "defensive_distillation",
    "adversarial_training",
    "gateway_rate_limiting",
)
"""The paper's countermeasure ids; the threat catalogue's rows and the registered defences are
checked against them."""
