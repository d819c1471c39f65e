"""The risk decision of section IV.A: inherent risk, accept/mitigate with reason, residual risk."""

from __future__ import annotations

import pytest

from finmlsec.spec import Stakes, parse_spec
from finmlsec.threatmodel import analyze
from finmlsec.threatmodel.risk import decide

TYPE_4 = """
organisations: [{id: bank}, {id: vendor}, {id: customer}]
roles: {training_data_provider: bank, system_user: customer, model_generator: vendor, model_operator: bank}
"""


def _threats(extra: str) -> dict[str, object]:
    return {t.id: t for t in analyze(parse_spec(TYPE_4 + extra)).threats}


@pytest.mark.parametrize(
    "confidentiality, risk, decision",
    [("public", "negligible", "accept"), ("internal", "moderate", "mitigate"),
     ("confidential", "high", "mitigate"), ("personal", "high", "mitigate")],
)
def test_inference_of_training_data_follows_confidentiality(confidentiality: str, risk: str, decision: str) -> None:
    t = _threats(f"stakes: {{training_data: {confidentiality}}}\n")["model_io.infer_training_data"]
    assert t.inherent_risk == risk and t.decision == decision  # type: ignore[attr-defined]
    assert confidentiality in t.reason  # type: ignore[attr-defined]


def test_model_value_and_harm_drive_the_other_attacks() -> None:
    threats = _threats("stakes: {model_value: negligible, harm_of_wrong_output: high, harm_of_outage: low}\n")
    assert threats["model_io.infer_model"].decision == "accept"  # type: ignore[attr-defined]
    assert threats["model_io.induce_false_prediction"].decision == "mitigate"  # type: ignore[attr-defined]
    assert threats["model_io.dos_model_operator"].decision == "accept"  # type: ignore[attr-defined]


def test_risk_appetite_moves_the_threshold() -> None:
    low = _threats("stakes: {model_value: moderate, risk_appetite: low}\n")["model_io.infer_model"]
    high = _threats("stakes: {model_value: moderate, risk_appetite: moderate}\n")["model_io.infer_model"]
    assert (low.decision, high.decision) == ("mitigate", "accept")  # type: ignore[attr-defined]
    assert "within the risk appetite (moderate)" in high.reason  # type: ignore[attr-defined]


def test_money_estimates_decide_when_an_acceptable_loss_is_given() -> None:
    extra = ("stakes: {model_value: high, currency: JPY, acceptable_loss: 1000000,\n"
             "         loss_estimates: {model_theft: 500000, wrong_output: 9000000}}\n")
    threats = _threats(extra)
    theft = threats["model_io.infer_model"]
    assert theft.decision == "accept" and theft.estimated_loss == 500000  # type: ignore[attr-defined]
    assert "500,000 JPY is within the acceptable loss 1,000,000 JPY" in theft.reason  # type: ignore[attr-defined]
    wrong = threats["model_io.induce_false_prediction"]
    assert wrong.decision == "mitigate" and "9,000,000 JPY is above" in wrong.reason  # type: ignore[attr-defined]


def test_deployed_countermeasures_lower_the_residual_risk() -> None:
    none = _threats("stakes: {harm_of_wrong_output: high}\n")["model_io.induce_false_prediction"]
    one = _threats("stakes: {harm_of_wrong_output: high}\ndeployed_countermeasures: [adversarial_training]\n")[
        "model_io.induce_false_prediction"]
    two = _threats("stakes: {harm_of_wrong_output: high}\n"
                   "deployed_countermeasures: [adversarial_training, detect_malicious_input]\n")[
        "model_io.induce_false_prediction"]
    assert (none.residual_risk, none.status) == ("high", "open")  # type: ignore[attr-defined]
    assert (one.residual_risk, one.status) == ("moderate", "partly mitigated")  # type: ignore[attr-defined]
    assert (two.residual_risk, two.status) == ("low", "mitigated")  # type: ignore[attr-defined]
    assert one.deployed == ("adversarial_training",)  # type: ignore[attr-defined]


def test_secondary_route_is_one_level_less_likely() -> None:
    d_primary = decide("infer_training_data", "primary", Stakes(training_data="internal"), [], ["pate"])
    d_secondary = decide("infer_training_data", "secondary", Stakes(training_data="internal"), [], ["pate"])
    assert (d_primary.inherent_risk, d_secondary.inherent_risk) == ("moderate", "low")
    assert d_secondary.decision == "accept" and "secondary route" in d_secondary.reason
