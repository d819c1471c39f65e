"""The risk decision of the paper's section IV.A.

For each applicable attack: estimate the loss from what the spec declares (confidentiality of the
training data, value of the model, harm of a wrong output or of an outage), giving an inherent
risk level; a secondary-priority route (the attacker can reach the training data directly) is one
level less likely. Accept when the risk is within the declared appetite (or the money estimate
within the acceptable loss), recording why; otherwise mitigate with the countermeasures. Each
countermeasure declared as deployed lowers the residual risk by one level (an estimate; ``finmlsec
scan`` measures it).

Example:
    >>> from finmlsec.spec import Stakes
    >>> d = decide("infer_training_data", "primary", Stakes(training_data="public"), [], ["pate"])
    >>> d.inherent_risk, d.decision, d.reason
    ('negligible', 'accept', 'training data is public: inherent risk negligible, within the risk appetite (low)')
    >>> decide("infer_model", "primary", Stakes(model_value="high"), [], ["modify_confidence"]).decision
    'mitigate'
"""

from __future__ import annotations

from dataclasses import dataclass

from finmlsec.spec.models import LEVELS, Stakes
from finmlsec.threatmodel.catalogue import load_catalogue

_CONFIDENTIALITY_RISK = {
    "public": "negligible",
    "internal": "moderate",
    "confidential": "high",
    "personal": "high",
}


@dataclass(frozen=True)
class Decision:
    inherent_risk: str
    decision: str
    reason: str
    residual_risk: str
    status: str
    estimated_loss: float | None


def _lower(level: str, steps: int) -> str:
    return LEVELS[max(0, LEVELS.index(level) - steps)]


def stake_of(attack: str, stakes: Stakes) -> tuple[str, str]:
    """(impact level, words explaining it) for an attack."""
    stake = load_catalogue().attacks[attack].stake
    if stake == "training_data":
        level = _CONFIDENTIALITY_RISK[stakes.training_data]
        if stakes.training_data == "personal" and stakes.personal_fields:
            fields = ", ".join(p.field for p in stakes.personal_fields)
            return level, f"training data holds personal data ({fields})"
        return level, f"training data is {stakes.training_data}"
    if stake == "model_value":
        return stakes.model_value, f"model value is {stakes.model_value}"
    if stake == "harm_of_wrong_output":
        return stakes.harm_of_wrong_output, f"harm of a wrong output is {stakes.harm_of_wrong_output}"
    return stakes.harm_of_outage, f"harm of an outage is {stakes.harm_of_outage}"


def _money(amount: float, currency: str) -> str:
    return f"{amount:,.0f} {currency}"


def decide(
    attack: str,
    priority: str,
    stakes: Stakes,
    deployed: list[str],
    countermeasures: list[str],
) -> Decision:
    impact, why = stake_of(attack, stakes)
    inherent = _lower(impact, 1) if priority == "secondary" else impact
    if priority == "secondary" and inherent != impact:
        why += " (secondary route: the attacker can reach the training data directly)"
    loss_key = load_catalogue().attacks[attack].loss
    loss = getattr(stakes.loss_estimates, loss_key)
    if loss is not None and stakes.acceptable_loss is not None:
        accept = loss <= stakes.acceptable_loss
        cmp = "within" if accept else "above"
        reason = (f"{why}: estimated loss {_money(loss, stakes.currency)} is {cmp} the acceptable "
                  f"loss {_money(stakes.acceptable_loss, stakes.currency)}")
    else:
        accept = LEVELS.index(inherent) <= LEVELS.index(stakes.risk_appetite)
        cmp = "within" if accept else "above"
        reason = f"{why}: inherent risk {inherent}, {cmp} the risk appetite ({stakes.risk_appetite})"
    if accept:
        return Decision(inherent, "accept", reason, inherent, "accepted", loss)
    reason += f"; apply {' or '.join(countermeasures)}"
    residual = _lower(inherent, len(deployed))
    if deployed:
        within = LEVELS.index(residual) <= LEVELS.index(stakes.risk_appetite)
        status = "mitigated" if within else "partly mitigated"
    else:
        status = "open"
    return Decision(inherent, "mitigate", reason, residual, status, loss)
