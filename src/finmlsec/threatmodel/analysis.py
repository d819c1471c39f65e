"""``analyze(spec) -> Analysis``: the paper's security analysis of one system.

Type (1-12) or the nearest types, attacker reach, the Table 2 rows that apply with their
priority, countermeasures and references, and the risk decision per threat. ``Analysis.to_json()``
is the documented JSON (``docs/analysis-schema.md``) with a stable key order.

Example:
    >>> from finmlsec.spec import parse_spec
    >>> spec = parse_spec('''
    ... organisations: [{id: bank}, {id: vendor}, {id: customer}]
    ... roles: {training_data_provider: bank, system_user: customer,
    ...         model_generator: vendor, model_operator: bank}
    ... stakes: {training_data: public}
    ... ''')
    >>> result = analyze(spec)
    >>> result.type, result.reach
    (4, ('model_io', 'false_prediction_data'))
    >>> [(t.attack, t.decision) for t in result.threats][:2]
    [('infer_model', 'mitigate'), ('infer_training_data', 'accept')]
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from finmlsec.ids import ROLES
from finmlsec.spec.models import SystemSpec
from finmlsec.threatmodel.catalogue import load_catalogue
from finmlsec.threatmodel.reach import classify, derive_reach
from finmlsec.threatmodel.risk import decide
from finmlsec.threatmodel.types import TYPES, describe_pattern

SCHEMA_VERSION = 1

_FROZEN = ConfigDict(extra="forbid", frozen=True)


class OrganisationView(BaseModel):
    model_config = _FROZEN
    id: str
    name: str | None
    roles: tuple[str, ...]
    security: Literal["high", "moderate"]
    security_declared: bool


class ReachItem(BaseModel):
    model_config = _FROZEN
    data: str
    title: str
    flows: tuple[str, ...]
    exposed_by: tuple[str, ...]


class Reference(BaseModel):
    model_config = _FROZEN
    id: str
    title: str


class Threat(BaseModel):
    """One applicable row of Table 2 with its risk decision."""

    model_config = _FROZEN
    id: str
    attack: str
    title: str
    via: str
    priority: Literal["primary", "secondary"]
    inherent_risk: str
    decision: Literal["accept", "mitigate"]
    reason: str
    countermeasures: tuple[str, ...]
    deployed: tuple[str, ...]
    residual_risk: str
    status: str
    estimated_loss: float | None
    measures: tuple[str, ...]
    references: tuple[Reference, ...]
    section: str


class CountermeasureView(BaseModel):
    model_config = _FROZEN
    id: str
    title: str
    by: str
    threats: tuple[str, ...]
    deployed: bool
    recommended: bool
    references: tuple[Reference, ...]


class Analysis(BaseModel):
    """The result of :func:`analyze`; ``to_json()`` is its documented serialisation."""

    model_config = _FROZEN
    schema_version: int
    system: str | None
    description: str | None
    type: int | None
    partition: str | None
    nearest_types: tuple[int, ...]
    departures: tuple[str, ...]
    organisations: tuple[OrganisationView, ...]
    roles: dict[str, tuple[str, ...]]
    reach: tuple[str, ...]
    reach_details: tuple[ReachItem, ...]
    threats: tuple[Threat, ...]
    countermeasures: tuple[CountermeasureView, ...]
    deployed_countermeasures: tuple[str, ...]
    risk_appetite: str
    currency: str

    def to_json(self, indent: int | None = 2) -> str:
        """JSON with the documented, stable key order."""
        return self.model_dump_json(indent=indent)


def _measures(cm: str, spec: SystemSpec) -> list[str]:
    info = load_catalogue().countermeasures[cm]
    if cm == "modify_training_data" and spec.stakes.personal_fields:
        out = []
        for p in spec.stakes.personal_fields:
            if p.band is not None:
                width = f"{p.band:,.0f}" if p.band == int(p.band) else f"{p.band:g}"
                out.append(f"truncate {p.field} to bands of {width}")
            elif p.round_to is None:
                out.append(f"round or truncate {p.field} (e.g. ages to the nearest 10)")
            else:
                step = f"{p.round_to:,.0f}" if p.round_to == int(p.round_to) else f"{p.round_to:g}"
                out.append(f"round {p.field} to the nearest {step}")
        return out
    return [info.measure]


def _refs(ids: tuple[str, ...]) -> tuple[Reference, ...]:
    cat = load_catalogue()
    return tuple(Reference(id=r, title=cat.title_of(r)) for r in ids)


def analyze(spec: SystemSpec) -> Analysis:
    """The paper's analysis of ``spec`` (see the module docstring)."""
    cat = load_catalogue()
    reach_info = derive_reach(spec)
    reach = reach_info.reach
    cls = classify(spec, reach)
    deployed_all = set(spec.deployed_countermeasures)
    if spec.stakes.training_data == "public":
        deployed_all.add("non_confidential_data")
    threats: list[Threat] = []
    for row in cat.threats:
        if row.via not in reach:
            continue
        secondary = row.secondary_when_reachable is not None and row.secondary_when_reachable in reach
        priority: Literal["primary", "secondary"] = "secondary" if secondary else "primary"
        cms = list(row.countermeasures)
        for cond in cat.conditional_countermeasures:
            applies = cond.when == "personal_fields_declared" and bool(spec.stakes.personal_fields)
            if cond.threat == row.id and applies and cond.countermeasure not in cms:
                cms.append(cond.countermeasure)
        deployed = [c for c in cms if c in deployed_all]
        d = decide(row.attack, priority, spec.stakes, deployed, cms)
        measures = [m for c in cms for m in _measures(c, spec)]
        threats.append(Threat(
            id=row.id, attack=row.attack, title=cat.attacks[row.attack].title, via=row.via,
            priority=priority, inherent_risk=d.inherent_risk, decision=d.decision, reason=d.reason,  # type: ignore[arg-type]
            countermeasures=tuple(cms), deployed=tuple(deployed), residual_risk=d.residual_risk,
            status=d.status, estimated_loss=d.estimated_loss, measures=tuple(measures),
            references=_refs(row.references), section=row.section,
        ))
    cm_views = []
    for cm_id, info in cat.countermeasures.items():
        for_threats = tuple(t.id for t in threats if cm_id in t.countermeasures)
        if not for_threats and cm_id not in spec.deployed_countermeasures:
            continue
        cm_views.append(CountermeasureView(
            id=cm_id, title=info.title, by=info.by, threats=for_threats,
            deployed=cm_id in deployed_all,
            recommended=any(t.decision == "mitigate" and cm_id in t.countermeasures for t in threats),
            references=_refs(info.references),
        ))
    orgs = sorted(
        spec.organisations,
        key=lambda o: (tuple(ROLES.index(r) for r in spec.roles_of(o.id)) or (9,), o.id),
    )
    return Analysis(
        schema_version=SCHEMA_VERSION,
        system=spec.name,
        description=spec.description.strip() if spec.description else None,
        type=cls.type,
        partition=describe_pattern(cls.pattern) if cls.pattern else None,
        nearest_types=cls.nearest_types,
        departures=cls.departures,
        organisations=tuple(
            OrganisationView(
                id=o.id, name=o.name, roles=spec.roles_of(o.id),
                security=spec.effective_security(o.id),  # type: ignore[arg-type]
                security_declared=o.security is not None,
            )
            for o in orgs
        ),
        roles={r: tuple(sorted(spec.roles.orgs(r))) for r in ROLES},
        reach=reach,
        reach_details=tuple(
            ReachItem(data=d, title=cat.data[d].title, flows=cat.data[d].flows,  # type: ignore[index]
                      exposed_by=reach_info.exposed_by[d])
            for d in reach
        ),
        threats=tuple(threats),
        countermeasures=tuple(cm_views),
        deployed_countermeasures=tuple(sorted(spec.deployed_countermeasures)),
        risk_appetite=spec.stakes.risk_appetite,
        currency=spec.stakes.currency,
    )


def type_table() -> list[dict[str, object]]:
    """The 12 types as rows (for ``finmlsec types``)."""
    return [
        {
            "type": t.number,
            "pattern": dict(zip(ROLES, t.pattern.upper(), strict=True)),
            "partition": t.describe(),
            "organisations": t.organisations,
            "reach": list(t.reach),
        }
        for t in TYPES.values()
    ]
