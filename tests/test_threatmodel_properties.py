"""Property tests: renaming organisations or reordering the YAML never changes the analysis."""

from __future__ import annotations

import json
import random
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from finmlsec.errors import SpecError
from finmlsec.ids import ROLES
from finmlsec.spec import parse_spec
from finmlsec.threatmodel import TYPES, analyze
from finmlsec.threatmodel.types import DATA, paper_reach

LEVELS = ["negligible", "low", "moderate", "high"]
IDS = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 5))
    orgs = [f"o{i}" for i in range(n)]
    roles: dict[str, Any] = {}
    for role in ROLES:
        members = draw(st.lists(st.sampled_from(orgs), min_size=1, max_size=2, unique=True))
        roles[role] = members[0] if len(members) == 1 and draw(st.booleans()) else members
    tdps = roles["training_data_provider"]
    if isinstance(tdps, list) and len(tdps) > 1 and draw(st.booleans()):
        roles["training_data_assembler"] = draw(st.sampled_from(tdps))
    organisations = []
    for org in orgs:
        item: dict[str, Any] = {"id": org}
        level = draw(st.sampled_from([None, None, "high", "moderate"]))
        if level:
            item["security"] = level
        organisations.append(item)
    stakes = {
        "training_data": draw(st.sampled_from(["public", "internal", "confidential", "personal"])),
        "model_value": draw(st.sampled_from(LEVELS)),
        "harm_of_wrong_output": draw(st.sampled_from(LEVELS)),
        "harm_of_outage": draw(st.sampled_from(LEVELS)),
        "risk_appetite": draw(st.sampled_from(LEVELS)),
        "personal_fields": draw(st.sampled_from([[], [{"field": "age", "round_to": 10}]])),
    }
    deployed = draw(st.lists(st.sampled_from(["pate", "modify_confidence", "adversarial_training",
                                              "gateway_rate_limiting"]), unique=True))
    return {"organisations": organisations, "roles": roles, "stakes": stakes,
            "deployed_countermeasures": deployed}


def outcome(data: dict[str, Any]) -> Any:
    try:
        result = analyze(parse_spec(yaml.safe_dump(data, sort_keys=False)))
    except SpecError as exc:
        return ("refused", "excluded" in str(exc))
    return result


def rename(data: dict[str, Any], mapping: dict[str, str]) -> dict[str, Any]:
    out = json.loads(json.dumps(data))
    for org in out["organisations"]:
        org["id"] = mapping[org["id"]]
    for role, value in out["roles"].items():
        out["roles"][role] = mapping[value] if isinstance(value, str) else [mapping[v] for v in value]
    return out


def shuffled(data: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    def shuffle_dict(d: dict[str, Any]) -> dict[str, Any]:
        keys = list(d)
        rng.shuffle(keys)
        return {k: d[k] for k in keys}

    out = json.loads(json.dumps(data))
    rng.shuffle(out["organisations"])
    out["organisations"] = [shuffle_dict(o) for o in out["organisations"]]
    for role, value in out["roles"].items():
        if isinstance(value, list):
            rng.shuffle(value)
    out["roles"] = shuffle_dict(out["roles"])
    out["stakes"] = shuffle_dict(out["stakes"])
    rng.shuffle(out["deployed_countermeasures"])
    return shuffle_dict(out)


@settings(max_examples=80, deadline=None, derandomize=True)
@given(data=specs(), names=st.lists(IDS, min_size=5, max_size=5, unique=True))
def test_renaming_organisations_never_changes_the_result(data: dict[str, Any], names: list[str]) -> None:
    mapping = {f"o{i}": names[i] for i in range(5)}
    back = {v: k for k, v in mapping.items()}
    a, b = outcome(data), outcome(rename(data, mapping))
    if isinstance(a, tuple) or isinstance(b, tuple):
        assert a == b
        return
    assert (a.type, a.nearest_types, a.reach, a.threats) == (b.type, b.nearest_types, b.reach, b.threats)
    assert a.partition == b.partition and len(a.departures) == len(b.departures)
    assert [set(r.exposed_by) for r in a.reach_details] == [
        {back[o] for o in r.exposed_by} for r in b.reach_details]
    assert {(o.id, o.roles, o.security) for o in a.organisations} == {
        (back[o.id], o.roles, o.security) for o in b.organisations}


@settings(max_examples=80, deadline=None, derandomize=True)
@given(data=specs(), seed=st.integers(0, 2**32 - 1))
def test_reordering_the_yaml_never_changes_the_result(data: dict[str, Any], seed: int) -> None:
    a, b = outcome(data), outcome(shuffled(data, random.Random(seed)))
    if isinstance(a, tuple) or isinstance(b, tuple):
        assert a == b
        return
    assert a.to_json() == b.to_json()


@settings(max_examples=80, deadline=None, derandomize=True)
@given(data=specs())
def test_type_is_given_only_when_reach_matches_the_paper(data: dict[str, Any]) -> None:
    result = outcome(data)
    if isinstance(result, tuple):
        return
    assert set(result.reach) <= set(DATA)
    if result.type is not None:
        assert result.reach == paper_reach(TYPES[result.type].pattern)
        assert result.nearest_types == ()
    else:
        assert result.nearest_types and set(result.nearest_types) <= set(TYPES)
        assert result.departures
    # threats are exactly the rows whose data is reachable
    assert {t.via for t in result.threats} == set(result.reach)
