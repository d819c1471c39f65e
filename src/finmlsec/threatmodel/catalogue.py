"""The threat catalogue: the paper's Table 2 as validated, declarative data (``catalogue.yaml``).

Example:
    >>> cat = load_catalogue()
    >>> [row.id for row in cat.threats][:2]
    ['training_data.infer_training_data', 'training_data.generate_malicious_model']
    >>> cat.row("model_io.infer_training_data").countermeasures
    ('modify_confidence', 'pate')
    >>> cat.countermeasures["pate"].references
    ('NIST AI 100-2: differential privacy',)
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, model_validator

from finmlsec.ids import ATTACK_IDS, COUNTERMEASURE_IDS, DataId, RoleId

StakeId = Literal["training_data", "model_value", "harm_of_wrong_output", "harm_of_outage"]
LossId = Literal["training_data_leak", "model_theft", "wrong_output", "outage"]
Condition = Literal["personal_fields_declared"]

_FROZEN = ConfigDict(extra="forbid", frozen=True)


class DataItem(BaseModel):
    model_config = _FROZEN
    title: str
    flows: tuple[str, ...]
    held_by: tuple[RoleId, ...]


class AttackInfo(BaseModel):
    model_config = _FROZEN
    title: str
    objective: Literal["confidentiality", "integrity", "availability"]
    stake: StakeId
    loss: LossId


class CountermeasureInfo(BaseModel):
    model_config = _FROZEN
    title: str
    by: RoleId
    measure: str
    references: tuple[str, ...]


class ThreatRow(BaseModel):
    """One row of Table 2."""

    model_config = _FROZEN
    id: str
    via: DataId
    attack: str
    countermeasures: tuple[str, ...]
    secondary_when_reachable: DataId | None
    paper_types: str
    section: str
    references: tuple[str, ...]


class ConditionalCountermeasure(BaseModel):
    model_config = _FROZEN
    threat: str
    countermeasure: str
    when: Condition
    section: str
    note: str


class Catalogue(BaseModel):
    """The whole catalogue; ids are checked against ``ATTACK_IDS`` and ``COUNTERMEASURE_IDS``."""

    model_config = _FROZEN
    version: int
    data: dict[DataId, DataItem]
    attacks: dict[str, AttackInfo]
    countermeasures: dict[str, CountermeasureInfo]
    threats: tuple[ThreatRow, ...]
    conditional_countermeasures: tuple[ConditionalCountermeasure, ...]
    reference_titles: dict[str, str]

    @model_validator(mode="after")
    def _ids(self) -> Catalogue:
        if tuple(self.attacks) != ATTACK_IDS:
            raise ValueError(f"attacks must be exactly {ATTACK_IDS}; got {tuple(self.attacks)}")
        if tuple(self.countermeasures) != COUNTERMEASURE_IDS:
            raise ValueError(f"countermeasures must be exactly {COUNTERMEASURE_IDS}")
        rows = {row.id for row in self.threats}
        for row in self.threats:
            if row.attack not in self.attacks:
                raise ValueError(f"threat {row.id}: unknown attack {row.attack!r}")
            if row.id != f"{row.via}.{row.attack}":
                raise ValueError(f"threat id {row.id!r} must be '<via>.<attack>'")
            for cm in row.countermeasures:
                if cm not in self.countermeasures:
                    raise ValueError(f"threat {row.id}: unknown countermeasure {cm!r}")
        for cond in self.conditional_countermeasures:
            if cond.threat not in rows or cond.countermeasure not in self.countermeasures:
                raise ValueError(f"conditional countermeasure {cond}: unknown threat or id")
        return self

    def row(self, threat_id: str) -> ThreatRow:
        for row in self.threats:
            if row.id == threat_id:
                return row
        raise KeyError(threat_id)

    def title_of(self, ref: str) -> str:
        return self.reference_titles.get(ref, "")


@lru_cache(maxsize=1)
def load_catalogue() -> Catalogue:
    """Load and validate the catalogue shipped with the package (cached)."""
    text = resources.files("finmlsec.threatmodel").joinpath("catalogue.yaml").read_text("utf-8")
    return Catalogue.model_validate(yaml.safe_load(text))
