"""The privacy loss a scan measured, per membership threat, and how it compares with a claim.

The strongest membership attack's scores give a statistical lower bound on the epsilon of
differentially private training (:func:`finmlsec.metrics.empirical_epsilon`, reported by every
membership attack as ``empirical_epsilon``); a spec may declare the model's privacy claim
(``model.privacy_claim``). The claim is contradicted when the bound, restated at the claim's delta,
exceeds the claimed epsilon.

Example:
    >>> m = {"empirical_epsilon": 2.0, "empirical_epsilon_point": 2.6,
    ...      "empirical_epsilon_delta": 1e-5, "empirical_epsilon_confidence": 0.95,
    ...      "empirical_epsilon_fpr_upper": 0.1, "empirical_epsilon_fnr_upper": 0.1}
    >>> p = privacy_loss("membership.lira", m, {"epsilon": 1.0, "delta": 1e-5})
    >>> p["claim_contradicted"], round(p["epsilon_lower"], 2)
    (True, 2.0)
"""

from __future__ import annotations

import math
from typing import Any

from finmlsec import metrics


def privacy_loss(attack: str, m: dict[str, Any], claim: dict[str, Any] | None = None
                 ) -> dict[str, Any] | None:
    """The privacy-loss entry of a threat from its strongest attack's metrics ``m`` (None when
    that attack reports none); ``claim``: ``{epsilon, delta}`` as declared in the spec."""
    if m.get("empirical_epsilon") is None:
        return None
    lo, delta = float(m["empirical_epsilon"]), float(m.get("empirical_epsilon_delta", 1e-5))
    conf = float(m.get("empirical_epsilon_confidence", 0.95))
    out: dict[str, Any] = {
        "attack": attack, "epsilon_lower": lo, "epsilon_point": m.get("empirical_epsilon_point"),
        "delta": delta, "confidence": conf, "records": m.get("empirical_epsilon_records"),
        "claim": dict(claim) if claim else None, "claim_contradicted": None,
    }
    if claim:
        c_eps, c_delta = float(claim["epsilon"]), float(claim.get("delta", 0.0))
        fpr, fnr = m.get("empirical_epsilon_fpr_upper"), m.get("empirical_epsilon_fnr_upper")
        at_claim = (metrics.epsilon_from_bounds(float(fpr), float(fnr), c_delta)
                    if fpr is not None and fnr is not None and c_delta != delta else lo)
        out.update(epsilon_lower=at_claim, delta=c_delta if fpr is not None else delta,
                   claim_contradicted=bool(at_claim > c_eps))
    out["words"] = words(out)
    return out


def _d(delta: float) -> str:
    return "0" if delta == 0 else f"{delta:.0e}".replace("e-0", "e-")


def words(p: dict[str, Any]) -> str:
    """The privacy loss in words a data-protection officer can act on."""
    lo, conf = p["epsilon_lower"], p["confidence"]
    head = (f"measured privacy loss: epsilon >= {lo:.2f} at delta {_d(p['delta'])} "
            f"({conf:.0%} confidence, from {p['attack']}"
            + (f"; point estimate {p['epsilon_point']:.2f}" if p.get("epsilon_point") is not None
               else "") + ")")
    if lo <= 0:
        body = ("the attack did not demonstrate a privacy loss; this does not show that the "
                "training is private (a stronger attack may succeed)")
    else:
        body = (f"when the attack answers, an attacker's odds that a person's record was (or "
                f"was not) in the training data rise by a factor of at least "
                f"{math.exp(lo):.1f}, more than a differentially private training with "
                f"epsilon below {lo:.2f} allows: no such guarantee can hold for this training")
    claim = p.get("claim")
    if claim:
        c = f"epsilon {float(claim['epsilon']):g}, delta {_d(float(claim.get('delta', 0.0)))}"
        body += (f"; the declared privacy claim ({c}) is CONTRADICTED by the measurement: the "
                 "model was not trained as claimed, or the claim is wrong"
                 if p["claim_contradicted"] else
                 f"; the declared privacy claim ({c}) is consistent with the measurement "
                 "(which cannot prove that it holds)")
    return f"{head}: {body}"


def _first_exposure(units: list[dict[str, Any]], outcomes: dict[str, dict[str, Any]]
                    ) -> dict[str, Any] | None:
    for u in units:
        o = outcomes.get(u["id"]) or {}
        e = ((o.get("result") or {}).get("details") or {}).get("exposure")
        if o.get("status") == "done" and e:
            return dict(e)
    return None


def exposure(attack: str, units: list[dict[str, Any]], outcomes: dict[str, dict[str, Any]]
             ) -> dict[str, Any] | None:
    """Who the strongest membership attack ``attack`` exposes on the system as deployed (its
    first measured seed), with what the most exposed 1% of members face under each
    countermeasure tried (``units``: the threat's units); None when it reports no exposure."""
    mine = [u for u in units if u["attack"] == attack]
    base = _first_exposure([u for u in mine if not u["defences"]], outcomes)
    if not base:
        return None
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for u in mine:
        if u["defences"]:
            groups.setdefault(tuple(u["defences"]), []).append(u)
    top_rows = {t["row"] for t in base.get("top", [])}
    cms = []
    for ds, us in groups.items():
        e = _first_exposure(us, outcomes)
        if e:
            cms.append({"defences": list(ds), "top1pct": e.get("top1pct"),
                        "all_flagged_at_1pct_fpr": e.get("all_flagged_at_1pct_fpr"),
                        "same_top": len(top_rows & {t["row"] for t in e.get("top", [])})})
    out = {"attack": attack, **base, "countermeasures": cms}
    out["words"] = exposure_words(out)
    return out


def _chance(t: dict[str, Any]) -> str:
    """The no-signal figure beside a top-1% share: the highest 1% of any scores lie above most
    non-members', so the share alone overstates exposure (an older result has none)."""
    c = t.get("chance")
    if c is None:
        return ""
    return (f" (an attack with no signal gives {c:.0%}: the top 1% of any scores lie above "
            "most others)")


def exposure_words(e: dict[str, Any]) -> str:
    """The exposure summary in words (row numbers only: never a record's content)."""
    rows = ", ".join(str(t["row"]) for t in e.get("top", [])[:10])
    more = len(e.get("top", [])) - 10
    t = e.get("top1pct") or {}
    text = (f"the training records {e['attack']} singles out most: rows {rows}"
            + (f" and {more} more" if more > 0 else "")
            + " (row numbers of the training data given to the scan). The most exposed 1% of "
            f"the {e['members']} training records ({t.get('n')}) are identified at a 1% "
            f"false-positive rate in {t.get('flagged_at_1pct_fpr', 0.0):.0%} of cases"
            + _chance(t) + f", against {e.get('all_flagged_at_1pct_fpr', 0.0):.0%} of all "
            "training records")
    p = e.get("profile") or {}
    traits = []
    op = (p.get("outlier_percentile") or {}).get("exposed")
    if op is not None:
        traits.append(f"they lie farther from other records than {op:.0%} of records do "
                      "(on average)")
    rc = p.get("rare_category_share")
    if rc:
        traits.append(f"{rc['exposed']:.0%} have a rare category value (below 5% of records), "
                      f"against {rc['all']:.0%} of all records")
    for o in p.get("over_represented", []):
        traits.append(f"{o['field']} = {o['value']} in {o['exposed']:.0%} of them "
                      f"(against {o['all']:.0%})")
    if traits:
        text += ". What the most exposed records share: " + "; ".join(traits)
    for c in e.get("countermeasures", []):
        ct = c.get("top1pct") or {}
        text += (f". Under {' + '.join(c['defences'])} the most exposed 1% are identified in "
                 f"{ct.get('flagged_at_1pct_fpr', 0.0):.0%} of cases" + _chance(ct)
                 + f" ({c['same_top']} of the same top records)")
    return text
