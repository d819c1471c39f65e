"""Building a spec from answers (``finmlsec init``) and writing it as commented YAML.

Example:
    >>> data = spec_from_answers(
    ...     name="Chatbot", organisations=["bank", "vendor", "customer"],
    ...     roles={"training_data_provider": ["bank"], "system_user": ["customer"],
    ...            "model_generator": ["vendor"], "model_operator": ["bank"]},
    ...     training_data="public")
    >>> text = to_yaml(data)
    >>> from finmlsec.spec import parse_spec
    >>> parse_spec(text).stakes.training_data
    'public'
"""

from __future__ import annotations

from typing import Any

import yaml

from finmlsec.errors import SpecError
from finmlsec.ids import ROLES


def parse_ids(text: str) -> list[str]:
    """``"bank, vendor"`` -> ``["bank", "vendor"]`` (order kept, duplicates dropped)."""
    out: list[str] = []
    for part in text.replace(";", ",").split(","):
        item = part.strip()
        if item and item not in out:
            out.append(item)
    return out


def parse_personal_field(text: str) -> dict[str, Any]:
    """``"age=10"`` -> ``{"field": "age", "round_to": 10}``; ``"age"`` -> ``{"field": "age"}``."""
    name, _, step = text.partition("=")
    name = name.strip()
    if not name:
        raise SpecError(f"a personal field needs a name, as in age=10; got {text!r}",
                        "stakes.personal_fields")
    if not step.strip():
        return {"field": name}
    try:
        value = float(step)
    except ValueError:
        raise SpecError(f"the rounding step of {name!r} must be a number, as in age=10; "
                        f"got {step.strip()!r}", "stakes.personal_fields") from None
    return {"field": name, "round_to": int(value) if value == int(value) else value}


def spec_from_answers(
    *,
    organisations: list[str],
    roles: dict[str, list[str]],
    name: str | None = None,
    assembler: str | None = None,
    security: dict[str, str] | None = None,
    training_data: str | None = None,
    personal_fields: list[dict[str, Any]] | None = None,
    model_value: str | None = None,
    harm_of_wrong_output: str | None = None,
    harm_of_outage: str | None = None,
    risk_appetite: str | None = None,
    deployed: list[str] | None = None,
) -> dict[str, Any]:
    """The spec mapping (validate it with :func:`finmlsec.spec.validate_spec`)."""
    security = security or {}
    data: dict[str, Any] = {}
    if name:
        data["name"] = name
    data["organisations"] = [
        {"id": org, **({"security": security[org]} if org in security else {})}
        for org in organisations
    ]
    role_map: dict[str, Any] = {}
    for role in ROLES:
        ids = roles.get(role, [])
        role_map[role] = ids[0] if len(ids) == 1 else ids
    if assembler:
        role_map["training_data_assembler"] = assembler
    data["roles"] = role_map
    stakes: dict[str, Any] = {}
    for key, value in (
        ("training_data", training_data),
        ("personal_fields", personal_fields or None),
        ("model_value", model_value),
        ("harm_of_wrong_output", harm_of_wrong_output),
        ("harm_of_outage", harm_of_outage),
        ("risk_appetite", risk_appetite),
    ):
        if value is not None:
            stakes[key] = value
    if stakes:
        data["stakes"] = stakes
    data["deployed_countermeasures"] = list(deployed or [])
    return data


def to_yaml(data: dict[str, Any]) -> str:
    """YAML text with a short header pointing at the documentation."""
    header = (
        "# System description for finmlsec (format: docs/spec.md).\n"
        "# Analyse it with: finmlsec analyze <this file> --format html -o analysis.html\n"
    )
    return header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
