"""The paper's threat model: types, the reach rule, the golden Table 2 and the use cases."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from finmlsec.errors import SpecError
from finmlsec.ids import ATTACK_IDS, COUNTERMEASURE_IDS, ROLES
from finmlsec.spec import load_spec, parse_spec
from finmlsec.threatmodel import EXCLUDED, TYPES, analyze, load_catalogue
from finmlsec.threatmodel.types import all_patterns, canonical, partition_distance

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# The paper's types (section III.D), transcribed: type -> (TDP, SU, MG, MO letters, data the
# attacker can reach)
DESIGN_TABLE = {
    1: ("abcd", {"training_data", "model_io", "false_prediction_data"}),
    2: ("aabc", {"training_data", "model_io", "false_prediction_data"}),
    3: ("abac", {"model_io", "false_prediction_data"}),
    4: ("abca", {"model_io", "false_prediction_data"}),
    5: ("abcb", {"training_data"}),
    6: ("abcc", {"training_data", "model_io", "false_prediction_data"}),
    7: ("aabb", {"training_data", "model_io", "false_prediction_data"}),
    8: ("abab", set()),
    9: ("abbb", {"training_data"}),
    10: ("abaa", {"model_io", "false_prediction_data"}),
    11: ("aaba", set()),
    12: ("aaaa", set()),
}

# The paper's Table 2: (data reached, attack) -> (countermeasures, types, types in parentheses)
PAPER_TABLE_2 = {
    ("training_data", "infer_training_data"): (
        {"non_confidential_data", "modify_training_data"}, {1, 2, 5, 6, 7, 9}, set()),
    ("training_data", "generate_malicious_model"): (
        {"detect_malicious_training_data", "robust_algorithm"}, {1, 2, 5, 6, 7, 9}, set()),
    ("training_data", "dos_model_generator"): ({"gateway_rate_limiting"}, {1, 2, 5, 6, 7, 9}, set()),
    ("model_io", "infer_model"): ({"modify_confidence"}, {1, 2, 3, 4, 6, 7, 10}, set()),
    ("model_io", "infer_training_data"): ({"modify_confidence", "pate"}, {3, 4, 10}, {1, 2, 6, 7}),
    ("model_io", "induce_false_prediction"): (
        {"detect_malicious_input", "defensive_distillation", "adversarial_training"},
        {1, 2, 3, 4, 6, 7, 10}, set()),
    ("model_io", "dos_model_operator"): ({"gateway_rate_limiting"}, {1, 2, 3, 4, 6, 7, 10}, set()),
    ("false_prediction_data", "generate_malicious_model"): (
        {"screen_false_prediction_data", "robust_algorithm"}, {3, 4, 10}, {1, 2, 6, 7}),
    ("false_prediction_data", "dos_training_data_provider"): (
        {"gateway_rate_limiting"}, {3, 4, 10}, {1, 2, 6, 7}),
}


def spec_for_pattern(pattern: str, names: dict[str, str] | None = None, extra: str = "") -> str:
    names = names or {c: f"org_{c}" for c in "abcd"}
    orgs = sorted({names[c] for c in pattern})
    roles = "\n".join(f"  {role}: {names[c]}" for role, c in zip(ROLES, pattern, strict=True))
    return "organisations:\n" + "".join(f"  - id: {o}\n" for o in orgs) + "roles:\n" + roles + "\n" + extra


def test_fifteen_partitions_three_excluded_twelve_numbered_as_in_design() -> None:
    patterns = all_patterns()
    assert len(patterns) == len(set(patterns)) == 15
    assert set(EXCLUDED) == {"abbc", "aaab", "abba"}  # {TDP}{SU,MG}{MO}, {TDP,SU,MG}{MO}, {TDP,MO}{SU,MG}
    assert {t.pattern for t in TYPES.values()} | set(EXCLUDED) == set(patterns)
    for number, (pattern, reach) in DESIGN_TABLE.items():
        assert TYPES[number].pattern == pattern
        assert set(TYPES[number].reach) == reach, number
        assert TYPES[number].organisations == len(set(pattern))


def test_reach_is_derived_by_the_rule_for_every_type() -> None:
    for number, (pattern, reach) in DESIGN_TABLE.items():
        result = analyze(parse_spec(spec_for_pattern(pattern)))
        assert result.type == number
        assert set(result.reach) == reach
        assert result.nearest_types == () and result.departures == ()


def test_golden_table_2_for_all_twelve_types() -> None:
    derived: dict[tuple[str, str], tuple[set[str], set[int], set[int]]] = {}
    for number, (pattern, _) in DESIGN_TABLE.items():
        for threat in analyze(parse_spec(spec_for_pattern(pattern))).threats:
            cms, primary, secondary = derived.setdefault((threat.via, threat.attack), (set(), set(), set()))
            cms.update(threat.countermeasures)
            (primary if threat.priority == "primary" else secondary).add(number)
    assert derived == PAPER_TABLE_2
    # types 8, 11 and 12: no attack at all
    for number in (8, 11, 12):
        assert analyze(parse_spec(spec_for_pattern(DESIGN_TABLE[number][0]))).threats == ()


def test_catalogue_paper_types_column_matches_the_golden_table() -> None:
    for row in load_catalogue().threats:
        _, primary, secondary = PAPER_TABLE_2[(row.via, row.attack)]
        text = ", ".join(map(str, sorted(primary)))
        if secondary:
            text += f" ({', '.join(map(str, sorted(secondary)))})"
        assert row.paper_types == text


def test_catalogue_ids_match_the_registries() -> None:
    from finmlsec.defences import DEFENCES
    from finmlsec.defences.base import COUNTERMEASURES
    from finmlsec.defences.guards import GUARDS

    cat = load_catalogue()
    registered = {cls.countermeasure for _, cls in [*DEFENCES.items(), *GUARDS.items()]}
    assert registered <= set(COUNTERMEASURE_IDS)
    # every countermeasure of the paper but "use non-confidential data" (a data decision) has a
    # registered component: a defence, or a serving guard (rate limiting, extraction detection)
    assert set(COUNTERMEASURE_IDS) - registered == {"non_confidential_data"}
    assert tuple(cat.countermeasures) == tuple(COUNTERMEASURES)
    assert tuple(cat.attacks) == ATTACK_IDS == (
        "infer_training_data", "generate_malicious_model", "dos_model_generator", "infer_model",
        "induce_false_prediction", "dos_model_operator", "dos_training_data_provider")
    used = {cm for row in cat.threats for cm in row.countermeasures}
    used |= {c.countermeasure for c in cat.conditional_countermeasures}
    assert used == set(COUNTERMEASURES)
    for row in cat.threats:
        for ref in row.references:
            assert ref.startswith(("AML.", "ML0", "NIST AI 100-2")), ref
            if not ref.startswith("NIST"):
                assert cat.title_of(ref), ref
    assert cat.countermeasures["pate"].references == ("NIST AI 100-2: differential privacy",)


def test_catalogue_is_declarative_data() -> None:
    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "src/finmlsec/threatmodel/catalogue.yaml").read_text())
    assert {c["when"] for c in raw["conditional_countermeasures"]} == {"personal_fields_declared"}
    assert {r["secondary_when_reachable"] for r in raw["threats"]} == {None, "training_data"}


@pytest.mark.parametrize("pattern", sorted(EXCLUDED))
def test_excluded_partition_is_refused_with_the_papers_reason(pattern: str) -> None:
    with pytest.raises(SpecError) as info:
        analyze(parse_spec(spec_for_pattern(pattern)))
    message = str(info.value)
    assert message.startswith("roles:")
    assert "not realistically deployable" in message and "excluded" in message


# -- beyond the paper's setting --------------------------------------------------------------------


def test_secure_provider_and_user_changes_reach_and_gives_nearest_types() -> None:
    text = spec_for_pattern("aabb").replace("  - id: org_a\n", "  - id: org_a\n    security: high\n")
    result = analyze(parse_spec(text))
    assert result.type is None and result.reach == () and result.threats == ()
    assert 7 in result.nearest_types  # same structure
    assert 11 in result.nearest_types  # same threats (none), closest structure
    assert any("declared high security" in d for d in result.departures)


def test_insecure_generator_exposes_training_data() -> None:
    text = spec_for_pattern("abac").replace("  - id: org_a\n", "  - id: org_a\n    security: moderate\n")
    result = analyze(parse_spec(text))
    assert result.type is None
    assert result.reach == ("training_data", "model_io", "false_prediction_data")
    assert 3 in result.nearest_types
    assert {t.priority for t in result.threats if t.id == "model_io.infer_training_data"} == {"secondary"}


def test_several_providers_without_assembler_is_ambiguous() -> None:
    text = """
organisations: [{id: bank}, {id: itp}, {id: customer}]
roles: {training_data_provider: [bank, itp], system_user: customer, model_generator: itp, model_operator: bank}
"""
    result = analyze(parse_spec(text))
    assert result.type is None and set(result.nearest_types) == {3, 4}
    assert any("training_data_assembler" in d for d in result.departures)
    marked = analyze(parse_spec(text.replace("model_operator: bank}", "model_operator: bank, training_data_assembler: itp}")))
    assert marked.type == 3


def test_moderate_extra_provider_exposes_training_data() -> None:
    text = """
organisations: [{id: bank}, {id: itp}, {id: broker}, {id: customer}]
roles: {training_data_provider: [itp, broker], training_data_assembler: itp, system_user: customer,
        model_generator: itp, model_operator: bank}
"""
    result = analyze(parse_spec(text))
    assert result.type is None and 3 in result.nearest_types
    assert result.reach_details[0].data == "training_data" and result.reach_details[0].exposed_by == ("broker",)


def test_partition_distance() -> None:
    assert partition_distance("aabb", "aabb") == 0
    assert partition_distance("aabb", "aaba") == 3
    assert canonical(["x", "y", "x", "z"]) == "abac"


# -- the paper's use cases (section IV.B) ------------------------------------------------------------


def _use_case(name: str):  # type: ignore[no-untyped-def]
    return analyze(load_spec(EXAMPLES / f"{name}.yaml"))


def _threat(result, threat_id):  # type: ignore[no-untyped-def]
    return next(t for t in result.threats if t.id == threat_id)


def test_office_work_via_mlaas_is_type_7() -> None:
    r = _use_case("office_mlaas")
    assert r.type == 7
    assert _threat(r, "training_data.infer_training_data").decision == "mitigate"
    assert "modify_training_data" in _threat(r, "training_data.infer_training_data").countermeasures
    assert _threat(r, "model_io.infer_model").decision == "accept"  # negligible for office work
    assert _threat(r, "training_data.generate_malicious_model").decision == "mitigate"
    assert _threat(r, "model_io.induce_false_prediction").decision == "mitigate"


def test_chatbot_is_type_4_and_accepts_inference_of_public_training_data() -> None:
    r = _use_case("chatbot")
    assert r.type == 4
    t = _threat(r, "model_io.infer_training_data")
    assert t.decision == "accept" and "training data is public" in t.reason
    assert t.inherent_risk == "negligible" and t.residual_risk == "negligible"
    assert _threat(r, "model_io.infer_model").decision == "accept"
    # the paper: check false-prediction data regularly
    fp = _threat(r, "false_prediction_data.generate_malicious_model")
    assert fp.decision == "mitigate" and "screen_false_prediction_data" in fp.countermeasures


@pytest.mark.parametrize("name, expected_type", [("credit_scoring", 3), ("credit_scoring_jv", 10)])
def test_credit_scoring_rounds_ages_and_incomes(name: str, expected_type: int) -> None:
    r = _use_case(name)
    assert r.type == expected_type
    t = _threat(r, "model_io.infer_training_data")
    assert t.decision == "mitigate"
    assert "modify_training_data" in t.countermeasures
    assert "round age to the nearest 10" in t.measures
    assert any(m.startswith(("round income", "round credit_amount")) for m in t.measures)
    assert _threat(r, "model_io.induce_false_prediction").decision == "mitigate"
    assert _threat(r, "false_prediction_data.generate_malicious_model").decision == "mitigate"


def test_anomaly_detection_public_market_data_is_type_10_bank_data_is_type_7() -> None:
    market = _use_case("market_anomaly")
    assert market.type == 10
    assert _threat(market, "model_io.infer_training_data").decision == "accept"  # public data
    assert _threat(market, "model_io.infer_model").decision == "accept"
    assert _threat(market, "model_io.induce_false_prediction").decision == "mitigate"
    assert _threat(market, "false_prediction_data.generate_malicious_model").decision == "mitigate"
    fraud = _use_case("fraud_bank_data")
    assert fraud.type == 7
    assert "training_data" in fraud.reach
