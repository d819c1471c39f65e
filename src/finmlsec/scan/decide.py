"""From unit outcomes to a decision per threat.

For each threat: the strongest attack's success on the system as it is (its **risk**), the success
under each countermeasure tried (and each combination), the utility each costs, and a final
decision with the **residual risk** (the risk left after the best countermeasure whose utility
cost is acceptable for the profile: the lowest residual risk level, and within it the smallest
utility cost). Risk levels come from an attack's headline success in [0, 1]
(see :class:`~finmlsec.attacks.base.AttackResult`): ``high`` from 0.5, ``medium`` from 0.2,
``low`` from 0.05, ``none`` below.

Example:
    >>> from finmlsec.scan.decide import risk_level, at_least
    >>> risk_level(0.62), risk_level(0.1), risk_level(None)
    ('high', 'low', 'not_measured')
    >>> at_least("medium", "low"), at_least("low", "medium")
    (True, False)
"""

from __future__ import annotations

from typing import Any

LEVELS = ("none", "low", "medium", "high")
THRESHOLDS = {"high": 0.5, "medium": 0.2, "low": 0.05}
# Countermeasures whose measured effect can be masking rather than robustness: they defeat the
# attack a scan runs by flattening its signal (saturated scores, vanishing gradients) and fall to
# stronger attacks. A scan reports them but never recommends them as the best countermeasure.
MASKING = {
    "defensive_distillation": "its effect is gradient and score masking: it falls to attacks on "
    "the logits or on labels alone (Carlini and Wagner 2016; docs/benchmarks.md: logit-margin "
    "PGD still succeeds on 90.5% of digits where cross-entropy PGD drops to 38.5%)",
}


def risk_level(success: float | None) -> str:
    if success is None:
        return "not_measured"
    for level in ("high", "medium", "low"):
        if success >= THRESHOLDS[level]:
            return level
    return "none"


def at_least(level: str, threshold: str) -> bool:
    """Whether ``level`` is a measured risk at or above ``threshold``."""
    return level in LEVELS and LEVELS.index(level) >= LEVELS.index(threshold)


def _success(outcome: dict[str, Any] | None) -> float | None:
    if not outcome or outcome.get("status") != "done" or not outcome.get("result"):
        return None
    s = outcome["result"].get("success")
    return None if s is None else float(s)


def _utility_score(u: dict[str, Any] | None, metric: str = "accuracy") -> float | None:
    if not u:
        return None
    return u.get(metric)


def decision_metric(declared: str | None, baseline: dict[str, float]) -> str:
    """The utility metric a countermeasure's cost is decided on: the declared one
    (``stakes.utility_metric``) where the deployed model's utility has it; else ``roc_auc`` when
    the model was measured on it (two classes, scores), else ``accuracy``.

    Example:
        >>> decision_metric(None, {"accuracy": 0.9, "roc_auc": 0.8})
        'roc_auc'
        >>> decision_metric("f1", {"accuracy": 0.9}), decision_metric(None, {})
        ('accuracy', 'accuracy')
    """
    if declared and (declared in baseline or not baseline):
        return declared
    return "roc_auc" if "roc_auc" in baseline else "accuracy"


def summarize(plan: dict[str, Any], outcomes: dict[str, dict[str, Any]], *,
              max_utility_drop: float = 0.05,
              utility_metric: str | None = None) -> dict[str, Any]:
    """The scan's summary (see ``docs/scan-schema.md``) from its plan and unit outcomes;
    ``utility_metric``: the declared metric a countermeasure's cost is decided on (None: the
    default of :func:`decision_metric`)."""
    units = plan["units"]
    baseline_util: dict[str, float] = {}
    for u in units:
        o = outcomes.get(u["id"])
        if not u["defences"] and o and o.get("utility"):
            baseline_util = o["utility"]
            break
    metric = decision_metric(utility_metric, baseline_util)
    base_score = _utility_score(baseline_util, metric)
    threats = []
    for t in plan["threats"]:
        key = f"{t['attack']}@{t['via']}"
        mine = [u for u in units if f"{u['threat']}@{u['via']}" == key]
        attacks = []
        for u in mine:
            if u["defences"]:
                continue
            o = outcomes.get(u["id"]) or {}
            r = o.get("result") or {}
            attacks.append({
                "name": u["attack"], "unit": u["id"], "status": o.get("status", "pending"),
                "success": _success(o), "risk": risk_level(_success(o)),
                "metrics": r.get("metrics", {}), "queries": r.get("queries"),
                "params": r.get("params", u["params"]), "error": o.get("error"),
            })
        measured = [a["success"] for a in attacks if a["success"] is not None]
        success = max(measured) if measured else None
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for u in mine:
            if u["defences"]:
                groups.setdefault(tuple(u["defences"]), []).append(u)
        cms = []
        for ds, us in groups.items():
            outs = [outcomes.get(u["id"]) or {} for u in us]
            vals = [v for v in (_success(o) for o in outs) if v is not None]
            util = next((o["utility"] for o in outs if o.get("utility")), None)
            score = _utility_score(util, metric)
            drop = (base_score - score) if base_score is not None and score is not None else None
            after = max(vals) if vals else None
            cms.append({
                "defences": list(ds), "countermeasures": list(us[0]["countermeasures"]),
                "units": [u["id"] for u in us], "success": after, "risk": risk_level(after),
                "utility": util, "utility_drop": drop,
                "errors": sorted({o["error"].splitlines()[0] for o in outs if o.get("error")}),
            })
        entry: dict[str, Any] = {
            "attack": t["attack"], "via": t["via"], "priority": t["priority"],
            "analysis_decision": t["decision"], "analysis_reason": t["reason"],
            "attacked": t["attacked"], "countermeasures_recommended": list(t["countermeasures"]),
            "attacks": attacks, "success": success, "risk": risk_level(success),
            "countermeasures": cms, "notes": list(t["notes"]),
        }
        entry.update(_decide(t, success, cms, max_utility_drop, metric))
        done = [a for a in attacks if a["success"] is not None]
        if done and all(a["metrics"].get("lower_bound") for a in done):
            entry["recommendation"] += (
                "; the measured risk is a lower bound (no attack ran at full strength: "
                "reference-model attacks need 64 reference models, the thorough profile)")
        threats.append(entry)
    statuses = [o.get("status") for o in outcomes.values()]
    measured_risks = [t["risk"] for t in threats if t["risk"] in LEVELS]
    residuals = [t["residual_risk"] for t in threats if t["residual_risk"] in LEVELS]
    return {
        "threats": threats,
        "baseline_utility": baseline_util,
        "max_risk": max(measured_risks, key=LEVELS.index) if measured_risks else "not_measured",
        "max_residual_risk": max(residuals, key=LEVELS.index) if residuals else "not_measured",
        "counts": {s: statuses.count(s) for s in ("done", "skipped", "error", "failed")},
        "units_total": len(units),
        "risk_thresholds": dict(THRESHOLDS),
        "max_utility_drop": max_utility_drop,
        "utility_metric": metric,
    }


def _decide(t: dict[str, Any], success: float | None, cms: list[dict[str, Any]],
            max_drop: float, metric: str = "accuracy") -> dict[str, Any]:
    risk = risk_level(success)
    if not t["attacked"]:
        return {"decision": "accept", "residual_risk": "accepted", "best": None,
                "recommendation": f"accepted by the analysis: {t['reason']}"}
    if success is None:
        return {"decision": t["decision"], "residual_risk": "not_measured", "best": None,
                "recommendation": "not measured by this scan (see the notes); the analysis "
                                  f"decision stands: {t['decision']}"}
    if risk in ("none", "low"):
        return {"decision": "accept", "residual_risk": risk, "best": None,
                "recommendation": f"measured risk is {risk} (success {success:.3f}); accept "
                                  "and re-scan after model changes"}
    ok = [c for c in cms if c["success"] is not None
          and (c["utility_drop"] is None or c["utility_drop"] <= max_drop)]
    # the lowest residual risk level first; within a level the cheapest (a risk manager buys
    # the level, not the third decimal), then the lower success and the fewer components
    ok.sort(key=lambda c: (LEVELS.index(c["risk"]), c["utility_drop"] or 0.0, c["success"],
                           len(c["defences"])))
    masked = [c for c in ok if c["success"] < success and set(c["defences"]) & MASKING.keys()]
    ok = [c for c in ok if not set(c["defences"]) & MASKING.keys()]
    caveat = "".join(
        f"; not recommended although it lowered success to {c['success']:.3f}: "
        f"{' + '.join(c['defences'])} ({'; '.join(MASKING[d] for d in c['defences'] if d in MASKING)})"
        for c in masked[:1])
    best = ok[0] if ok else None
    if best is not None and best["success"] < success:
        cost = "n/a" if best["utility_drop"] is None else f"{best['utility_drop']:+.3f}"
        left = f"; residual risk {best['risk']}" + (
            ": add further measures or accept it explicitly" if at_least(best["risk"], "medium")
            else "")
        return {
            "decision": "mitigate", "residual_risk": best["risk"], "best": best["defences"],
            "recommendation": f"apply {' + '.join(best['defences'])}: success {success:.3f} -> "
                              f"{best['success']:.3f}, {metric} cost {cost}{left}{caveat}",
        }
    return {"decision": "mitigate", "residual_risk": risk, "best": None,
            "recommendation": "no countermeasure tried lowers the risk at an acceptable utility "
                              f"cost (at most {max_drop:.2f} {metric}); escalate: restrict access "
                              f"or accept the loss explicitly{caveat}"}
