"""Attacker reach and the system type of a spec.

The rule (paper, section III.B-C): an attacker can manipulate the data held by an organisation
unless that organisation is highly secure. Organisations acting as model generator or operator
are highly secure by default, others moderate; a spec may declare any organisation's level.

* training data is reachable if a training-data provider (or the model generator, when declared
  moderate) is not highly secure;
* model input/output data if a system user (or the model operator, when declared moderate) is not;
* false-prediction data if a system user is not (the user sends it, flow G).

Example:
    >>> from finmlsec.spec import parse_spec
    >>> spec = parse_spec('''
    ... organisations: [{id: bank}, {id: vendor}]
    ... roles: {training_data_provider: bank, system_user: bank,
    ...         model_generator: vendor, model_operator: vendor}
    ... ''')
    >>> derive_reach(spec).reach
    ('training_data', 'model_io', 'false_prediction_data')
    >>> classify(spec, derive_reach(spec).reach).type
    7
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from finmlsec.errors import SpecError
from finmlsec.ids import ROLE_ABBREV, ROLES
from finmlsec.spec.models import SystemSpec
from finmlsec.threatmodel.types import (
    DATA,
    EXCLUDED,
    TYPES,
    canonical,
    describe_pattern,
    is_excluded,
    partition_distance,
)

_HOLDERS = {
    "training_data": ("training_data_provider", "model_generator"),
    "model_io": ("system_user", "model_operator"),
    "false_prediction_data": ("system_user",),
}


@dataclass(frozen=True)
class Reach:
    """What the attacker can reach and through which organisations."""

    reach: tuple[str, ...]
    exposed_by: dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class Classification:
    type: int | None
    pattern: str | None
    nearest_types: tuple[int, ...]
    departures: tuple[str, ...]


def derive_reach(spec: SystemSpec) -> Reach:
    exposed: dict[str, tuple[str, ...]] = {}
    for data in DATA:
        orgs = {o for role in _HOLDERS[data] for o in spec.roles.orgs(role)}
        weak = tuple(sorted(o for o in orgs if spec.effective_security(o) == "moderate"))
        if weak:
            exposed[data] = weak
    return Reach(tuple(d for d in DATA if d in exposed), exposed)


def _selections(spec: SystemSpec) -> list[str]:
    """Patterns of every way to pick one organisation per role (the assembler for the TDP)."""
    choices = []
    for role in ROLES:
        orgs = spec.roles.orgs(role)
        if role == "training_data_provider" and spec.roles.training_data_assembler is not None:
            orgs = (spec.roles.training_data_assembler,)
        choices.append(sorted(set(orgs)))
    return sorted({canonical(list(pick)) for pick in itertools.product(*choices)})


def classify(spec: SystemSpec, reach: tuple[str, ...]) -> Classification:
    """The paper's type, or None with the nearest types and what departs from the paper."""
    patterns = _selections(spec)
    deployable = [p for p in patterns if not is_excluded(p)]
    if not deployable:
        pattern = patterns[0]
        raise SpecError(
            f"this partition of roles, {describe_pattern(pattern)}, is one of the paper's 3 excluded "
            f"ones: {EXCLUDED[pattern]}; let the system user's organisation also operate the model, "
            "or the operator also generate it",
            "roles",
        )
    departures = _departures(spec, patterns)
    types = sorted({_number(p) for p in deployable})
    if len(types) == 1 and TYPES[types[0]].reach == reach:
        return Classification(types[0], deployable[0], (), tuple(departures))
    if len(types) == 1:
        paper = TYPES[types[0]].reach
        added = [d for d in reach if d not in paper]
        removed = [d for d in paper if d not in reach]
        what = "; ".join(
            part
            for part in (
                f"also reachable: {', '.join(added)}" if added else "",
                f"not reachable: {', '.join(removed)}" if removed else "",
            )
            if part
        )
        departures.append(
            f"the roles form type {types[0]} ({describe_pattern(deployable[0])}) but the declared "
            f"security levels change what the attacker can reach ({what})"
        )
    else:
        departures.append(
            f"the roles fit several partitions ({', '.join(describe_pattern(p) for p in deployable)})"
            "; name the organisation that assembles the training data in "
            "roles.training_data_assembler"
            if len(spec.roles.orgs("training_data_provider")) > 1
            and spec.roles.training_data_assembler is None
            else f"the roles fit several partitions "
            f"({', '.join(describe_pattern(p) for p in deployable)})"
        )
    return Classification(None, None, _nearest(deployable, reach), tuple(departures))


def _number(pattern: str) -> int:
    return next(n for n, t in TYPES.items() if t.pattern == pattern)


def _nearest(deployable: list[str], reach: tuple[str, ...]) -> tuple[int, ...]:
    """Types with the same structure, plus the structurally closest types with the same threats
    (or, if no type has this reach, the closest reach)."""
    structural = {_number(p) for p in deployable}

    def reach_gap(t: int) -> int:
        return len(set(TYPES[t].reach) ^ set(reach))

    best_gap = min(reach_gap(t) for t in TYPES)
    same = [t for t in TYPES if reach_gap(t) == best_gap]
    dist = {t: min(partition_distance(TYPES[t].pattern, p) for p in deployable) for t in same}
    closest = min(dist.values())
    return tuple(sorted(structural | {t for t in same if dist[t] == closest}))


def _departures(spec: SystemSpec, patterns: list[str]) -> list[str]:
    out: list[str] = []
    for role in ROLES:
        orgs = spec.roles.orgs(role)
        if len(orgs) > 1:
            extra = ""
            if role == "training_data_provider" and spec.assembler() is not None:
                extra = f", {spec.assembler()} assembles the training data"
            out.append(f"{ROLE_ABBREV[role]} is played by {len(orgs)} organisations "
                       f"({', '.join(sorted(orgs))}){extra}")
    for org in sorted(spec.organisations, key=lambda o: o.id):
        default = spec.default_security(org.id)
        if org.security is not None and org.security != default:
            roles = ", ".join(ROLE_ABBREV[r] for r in spec.roles_of(org.id)) or "no role"
            out.append(f"{org.id} ({roles}) is declared {org.security} security; "
                       f"the paper assumes {default}")
        if not spec.roles_of(org.id):
            out.append(f"{org.id} plays no role")
    return out
