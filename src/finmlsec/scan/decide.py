"""From unit outcomes to a decision per threat.

For each threat: the strongest attack's success on the system as it is (its **risk**), the success
under each countermeasure tried (and each combination), the utility each costs, and a final
decision with the **residual risk** (the risk left after the best countermeasure whose utility
cost is acceptable for the profile: the lowest residual risk level, and within it the smallest
utility cost). Risk levels come from an attack's headline success in [0, 1]
(see :class:`~finmlsec.attacks.base.AttackResult`): ``high`` from 0.5, ``medium`` from 0.2,
``low`` from 0.05, ``none`` below. An extraction attack's success is already 0 when its copy's
lift over the no-model copy is within noise (McNemar's exact test, see
:func:`~finmlsec.attacks.extraction_common.theft_success`), an evasion's when its lift over
random valid changes of the same cost is (see :mod:`finmlsec.attacks.evasion_chance`); that
attack's own notes say so (an attack's ``notes`` in the summary, beside its figure).

Example:
    >>> from finmlsec.scan.decide import risk_level, at_least
    >>> risk_level(0.62), risk_level(0.1), risk_level(None)
    ('high', 'low', 'not_measured')
    >>> at_least("medium", "low"), at_least("low", "medium")
    (True, False)
"""

from __future__ import annotations

from typing import Any

from finmlsec.attacks.extraction_common import ESTIMATE
from finmlsec.scan.privacy import exposure, privacy_loss

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


#: One-sided test of a countermeasure's effect: it counts when the success figure falls by more
#: than this many standard errors (1.96: 2.5% chance of calling noise an effect).
Z_EFFECT = 1.96


#: The fewest victims over which an attack rated on its lift over chance (``lift_p`` in its
#: metrics: evasion against random valid changes) can show a significant lift: McNemar's
#: one-sided p is at least 0.5 ** n, under 0.05 from n = 5. A unit on fewer rates 0 whatever it
#: turned, so its 0 is no evidence.
MIN_LIFT_TRIALS = 5


def trials(outcome: dict[str, Any]) -> float | None:
    """How many independent trials one unit's success figure is a share of: the victims of an
    evasion, the candidate records of a membership test, the targets of the feedback loop
    (``n_trials``), one retraining loop for an attack whose success is whether the loop flipped
    (an older result), else the held-out records the attack was measured on
    (``n_test`` of the outcome); None when unknown."""
    m = (outcome.get("result") or {}).get("metrics") or {}
    for key in ("n_trials", "n_victims"):
        if key in m and m[key] is not None:
            return float(m[key])  # 0: nothing to attack (see :func:`effect`)
    if m.get("members") is not None and m.get("nonmembers") is not None:
        return float(m["members"]) + float(m["nonmembers"]) or None
    if "flipped" in m:
        return 1.0
    n = outcome.get("n_test")
    return float(n) if n else None


def _estimate(outcome: dict[str, Any]) -> float:
    """One unit's success figure as compared across countermeasures: the point estimate an attack
    keeps (``success_estimate``) when it counted its success as 0 for being within noise of its
    no-model baseline, else the success itself."""
    m = (outcome.get("result") or {}).get("metrics") or {}
    est = m.get(ESTIMATE)
    return float(est) if est is not None else float(_success(outcome) or 0.0)


def figure(outs: list[dict[str, Any]]) -> dict[str, Any]:
    """An attack's success over the seeds it ran with (``outs``: the outcomes of its repeats):
    the mean, the number of seeds measured, the trials over all of them (None when one is
    unknown) and the seed-to-seed standard deviation (None for one seed). ``estimate`` is the
    mean of the point estimates (:func:`_estimate`), which :func:`effect` compares: a lift
    counted as 0 because it is not significant on the few victims a defended model leaves is
    no evidence that the countermeasure stopped the attack."""
    done = [o for o in outs if _success(o) is not None]
    vals = [float(_success(o) or 0.0) for o in done]
    ests = [_estimate(o) for o in done]
    ns = [trials(o) for o in done]
    k = len(vals)
    mean = sum(vals) / k if k else None
    spread = (sum((v - (mean or 0.0)) ** 2 for v in vals) / (k - 1)) ** 0.5 if k >= 2 else None
    empty = bool(ns) and all(n == 0 for n in ns)
    lifted = bool(done) and all("lift_p" in (((o.get("result") or {}).get("metrics")) or {})
                                for o in done)
    return {"success": mean, "seeds": k, "estimate": sum(ests) / k if k else None,
            "trials": sum(n for n in ns if n) if ns and all(ns) else None, "spread": spread,
            "empty": empty,
            "too_few": lifted and not empty and all(
                n is not None and n < MIN_LIFT_TRIALS for n in ns)}


def effect(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Whether a countermeasure lowered the strongest attack's success (``before`` and
    ``after``: :func:`figure` s) beyond noise. The standard error of the difference adds the
    binomial sampling error of two shares of ``trials`` (at their pooled value, as a
    two-proportion test) and the seed-to-seed variance of each mean; the effect counts when the
    fall exceeds :data:`Z_EFFECT` standard errors. With neither estimate of noise (one seed, an
    unknown number of trials) no effect is established.

    Example:
        >>> a = {"success": 0.6, "trials": 100.0, "seeds": 1, "spread": None}
        >>> effect(a, {"success": 0.2, "trials": 100.0, "seeds": 1, "spread": None})["significant"]
        True
        >>> effect(a, {"success": 0.5, "trials": 100.0, "seeds": 1, "spread": None})["significant"]
        False
        >>> effect(a, dict(a))["words"]
        'no measurable effect (0.600 -> 0.600)'
        >>> effect(a, {"success": 0.5, "trials": 100.0, "seeds": 1, "spread": None})["words"][:30]
        'effect not shown beyond noise '
        >>> effect(a, {"success": 0.0, "trials": None, "seeds": 1, "spread": None,
        ...            "empty": True})["words"][:31]
        'not measurable (0.600 -> 0.000)'
    """
    b, a = (float(f["estimate"] if f.get("estimate") is not None else f["success"])
            for f in (before, after))
    zeroed = [w for w, f, x in (("as deployed", before, b), ("behind it", after, a))
              if x != float(f["success"])]
    diff = b - a
    var, basis = 0.0, []
    if before.get("trials") and after.get("trials"):
        p = min(max((b + a) / 2, 0.0), 1.0)
        var += p * (1 - p) * (1 / before["trials"] + 1 / after["trials"])
        basis.append(f"binomial error over {before['trials']:g} and {after['trials']:g} trials")
    if before.get("spread") is not None and after.get("spread") is not None:
        var += before["spread"] ** 2 / before["seeds"] + after["spread"] ** 2 / after["seeds"]
        basis.append(f"seed-to-seed spread over {before['seeds']} and {after['seeds']} seeds")
    se = var ** 0.5
    if after.get("empty") or before.get("empty"):
        significant, words = False, (
            f"not measurable ({b:.3f} -> {a:.3f}): no record was decided against the "
            f"attacker {'behind it' if after.get('empty') else 'as deployed'}, so there was "
            "nothing to attack (a model that never decides against anyone)")
    elif not basis:
        significant, words = False, (
            f"effect not established ({b:.3f} -> {a:.3f}; one seed and an unknown number of "
            "trials give no estimate of noise)")
    elif diff <= 0:
        significant, words = False, f"no measurable effect ({b:.3f} -> {a:.3f})"
    elif diff <= Z_EFFECT * se:
        significant, words = False, (
            f"effect not shown beyond noise ({b:.3f} -> {a:.3f}: a fall of {diff:.3f} with a "
            f"standard error of {se:.3f}; more seeds or victims would tell)")
    else:
        significant, words = True, (f"lowers success beyond noise ({b:.3f} -> {a:.3f}, "
                                    f"{diff / se if se else float('inf'):.1f} standard errors)")
    if zeroed:
        words += (f"; compared on the lift {' and '.join(zeroed)} rather than its success "
                  "counted as 0: that lift is within noise of chance on its trials, which is no "
                  "evidence that the attack failed")
    return {"difference": diff, "standard_error": se if basis else None,
            "significant": significant, "basis": "; ".join(basis) or None, "words": words}


def _status(statuses: list[str]) -> str:
    """One status for an attack's repeats: done if any seed was measured."""
    for s in ("done", "error", "failed", "skipped", "running"):
        if s in statuses:
            return s
    return statuses[0] if statuses else "pending"


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
              utility_metric: str | None = None,
              privacy_claim: dict[str, Any] | None = None) -> dict[str, Any]:
    """The scan's summary (see ``docs/scan-schema.md``) from its plan and unit outcomes;
    ``utility_metric``: the declared metric a countermeasure's cost is decided on (None: the
    default of :func:`decision_metric`); ``privacy_claim``: the model's declared
    ``{epsilon, delta}``, compared with the privacy loss membership attacks measure."""
    units = plan["units"]
    baseline_util: dict[str, float] = {}
    for u in units:
        o = outcomes.get(u["id"])
        if not u["defences"] and o and o.get("utility"):
            baseline_util = o["utility"]
            break
    decisions = next((o["decisions"] for u in units if not u["defences"]
                      for o in [outcomes.get(u["id"])] if o and o.get("decisions")), None)
    metric = decision_metric(utility_metric, baseline_util)
    base_score = _utility_score(baseline_util, metric)
    threats = []
    for t in plan["threats"]:
        key = f"{t['attack']}@{t['via']}"
        mine = [u for u in units if f"{u['threat']}@{u['via']}" == key]
        attacks = []
        figures: dict[str, dict[str, Any]] = {}
        for name in dict.fromkeys(u["attack"] for u in mine if not u["defences"]):
            reps = [u for u in mine if not u["defences"] and u["attack"] == name]
            outs = [outcomes.get(u["id"]) or {} for u in reps]
            fig = figure(outs)
            first = next((o for o in outs if _success(o) is not None), outs[0])
            r = first.get("result") or {}
            figures[name] = fig
            attacks.append({
                "name": name, "unit": reps[0]["id"],
                "status": _status([o.get("status", "pending") for o in outs]),
                "success": fig["success"], "risk": risk_level(fig["success"]),
                "metrics": r.get("metrics", {}), "queries": r.get("queries"),
                "params": r.get("params", reps[0]["params"]),
                "error": next((o["error"] for o in outs if o.get("error")), None),
                "seeds": fig["seeds"], "trials": fig["trials"], "spread": fig["spread"],
                "notes": result_notes(outs) + few_victims(outs),
            })
        # an attack with nothing to attack (an evasion whose every victim the deployed model
        # already decides for the attacker) measured no risk: its 0 is no evidence of safety
        empty = [a for a in attacks if a["success"] is not None and figures[a["name"]]["empty"]]
        for a in empty:
            a["risk"] = "not_measured"
        # one rated on its lift over chance on fewer victims than that lift can be significant
        # over rates 0 whatever it turned: no evidence either way
        few = [a for a in attacks if a["success"] is not None and a not in empty
               and figures[a["name"]]["too_few"]]
        for a in few:
            a["risk"] = "not_measured"
        measured = [a for a in attacks if a["success"] is not None and a not in empty + few]
        strongest = max(measured, key=lambda a: a["success"]) if measured else None
        success = strongest["success"] if strongest else None
        before = figures[strongest["name"]] if strongest else None
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for u in mine:
            if u["defences"]:
                groups.setdefault(tuple(u["defences"]), []).append(u)
        cms = []
        for ds, us in groups.items():
            outs = [outcomes.get(u["id"]) or {} for u in us]
            per_attack = [figure([outcomes.get(u["id"]) or {} for u in us if u["attack"] == a])
                          for a in dict.fromkeys(u["attack"] for u in us)]
            per_attack = [f for f in per_attack if f["success"] is not None]
            # rated on the strongest success behind it, compared on the strongest point
            # estimate (see figure)
            value = max(f["success"] for f in per_attack) if per_attack else None
            rival = max(per_attack, key=lambda f: f["estimate"]) if per_attack else None
            util = next((o["utility"] for o in outs if o.get("utility")), None)
            score = _utility_score(util, metric)
            drop = (base_score - score) if base_score is not None and score is not None else None
            cms.append({
                "defences": list(ds), "countermeasures": list(us[0]["countermeasures"]),
                "units": [u["id"] for u in us], "success": value, "risk": risk_level(value),
                "utility": util, "utility_drop": drop,
                "effect": effect(before, rival) if before and rival else None,
                "errors": sorted({o["error"].splitlines()[0] for o in outs if o.get("error")}),
                "notes": [{"attack": a, "note": n}
                          for a in dict.fromkeys(u["attack"] for u in us)
                          for n in result_notes([outcomes.get(u["id"]) or {}
                                                 for u in us if u["attack"] == a])],
            })
        entry: dict[str, Any] = {
            "attack": t["attack"], "via": t["via"], "priority": t["priority"],
            "analysis_decision": t["decision"], "analysis_reason": t["reason"],
            "attacked": t["attacked"], "countermeasures_recommended": list(t["countermeasures"]),
            "attacks": attacks, "success": success, "risk": risk_level(success),
            "countermeasures": cms, "notes": list(t["notes"]),
            "privacy_loss": privacy_loss(strongest["name"], strongest["metrics"], privacy_claim)
            if strongest else None,
            "exposure": exposure(strongest["name"], mine, outcomes) if strongest else None,
        }
        entry["notes"].extend(_not_measurable_note(a, few=a in few) for a in empty + few)
        entry.update(_decide(t, success, cms, max_utility_drop, metric, baseline_util))
        if (empty or few) and success is None and t["attacked"]:
            entry["recommendation"] = (
                "not measured: " + "; ".join(n for n in entry["notes"] if ": not measurable: "
                                             in n) + f"; the analysis decision stands: "
                f"{t['decision']}")
        entry["lower_bound"] = lower_bound_reasons(t, attacks)
        if entry["lower_bound"] and entry["success"] is not None:
            entry["recommendation"] += (
                "; the measured risk is a lower bound (" + "; ".join(entry["lower_bound"])
                + "): run the thorough profile before accepting it")
        if strongest and entry["success"] is not None and _either_direction(
                outcomes.get(strongest["unit"]) or {}):
            entry["recommendation"] += (
                "; the success counts a change of decision in either direction (no "
                "favourable_class in the schema): declare it (finmlsec schema infer DATA "
                "--label COL --favourable VALUE) to count only moves to the outcome an "
                "applicant wants")
        threats.append(entry)
    statuses = [o.get("status") for o in outcomes.values()]
    measured_risks = [t["risk"] for t in threats if t["risk"] in LEVELS]
    residuals = [t["residual_risk"] for t in threats if t["residual_risk"] in LEVELS]
    return {
        "threats": threats,
        "warnings": [w for w in [constant_decisions_warning(decisions)] if w],
        "decisions": decisions,
        "baseline_utility": baseline_util,
        "max_risk": max(measured_risks, key=LEVELS.index) if measured_risks else "not_measured",
        "max_residual_risk": max(residuals, key=LEVELS.index) if residuals else "not_measured",
        "counts": {s: statuses.count(s) for s in ("done", "skipped", "error", "failed")},
        "units_total": len(units),
        "risk_thresholds": dict(THRESHOLDS),
        "max_utility_drop": max_utility_drop,
        "utility_metric": metric,
        "effect_z": Z_EFFECT,
    }


def constant_decisions_warning(decisions: dict[str, Any] | None) -> str | None:
    """The report's headline warning when the deployed model decides (nearly) every held-out
    record alike (``decisions``: :func:`finmlsec.scan.work.decision_spread`), else None.

    Example:
        >>> constant_decisions_warning({"majority": "good", "share": 1.0, "n": 300,
        ...                             "threshold": None, "constant": True})[:62]
        "the deployed model decides 'good' for 100.0% of the 300 held-o"
    """
    if not decisions or not decisions.get("constant"):
        return None
    at = ("at the model's own threshold (its predict: 0.5 for a probabilistic classifier)"
          if decisions.get("threshold") is None
          else f"at the spec's decision_threshold {decisions['threshold']:g}")
    truth = decisions.get("label_share")
    labels = (f" (whose labels are {decisions['majority']!r} for {100 * truth:.1f}%)"
              if truth is not None else "")
    return (f"the deployed model decides {decisions['majority']!r} for "
            f"{100 * decisions['share']:.1f}% of the {decisions['n']} held-out records{labels} "
            f"{at}: "
            "its decisions carry no information, and every figure measured on decisions "
            "(extraction agreement, evasion, poisoning and feedback flips, accuracy as utility) "
            "is measured on a model that decides alike for everyone; give the cut-off the bank "
            "applies to the score of the schema's positive class as model.decision_threshold "
            "in the spec (docs/spec.md) and scan again")


def result_notes(outs: list[dict[str, Any]]) -> list[str]:
    """The notes of an attack's results over its seeds (``outs``: the outcomes of its repeats),
    each once, in order: what the attack itself says about its figure (a success counted as 0
    because it is within noise, a lower bound, the direction of the decisions it counts).

    Example:
        >>> result_notes([{"result": {"notes": ["a", "b"]}}, {"result": {"notes": ["a"]}}, {}])
        ['a', 'b']
    """
    return list(dict.fromkeys(str(n) for o in outs
                              for n in ((o.get("result") or {}).get("notes") or ())))


#: Below this many victims (an evasion's) or targets (the feedback loop's) over all seeds, the
#: share is reported with its interval.
FEW_VICTIMS = 20


def _not_measurable_note(a: dict[str, Any], few: bool) -> str:
    """Why attack ``a`` (an evasion) measured nothing: no victim at all, or ``few`` victims, too
    few for its lift over random changes to be significant; neither is evidence of robustness."""
    m = a["metrics"]
    if few:
        turned = float(m.get("raw_success_rate", m.get("success_rate", 0.0)) or 0.0)
        return (f"{a['name']}: not measurable: {m.get('n_victims', 0):g} victim(s) a seed were "
                f"decided against the attacker (it turned {turned:.3f} of them), too few for its "
                "lift over random valid changes to be significant (McNemar's test needs at least "
                f"{MIN_LIFT_TRIALS}); this is no evidence of robustness: more held-out records, a "
                "larger victim limit, or the bank's cut-off (model.decision_threshold) where the "
                "model refuses few, give it victims")
    return (f"{a['name']}: not measurable: the deployed model already gives the outcome the "
            f"attacker wants to every record tried ({m.get('n_already_at_goal', 0):g} of "
            f"{m.get('n_already_at_goal', 0) + m.get('n_victims', 0):g}), so there was no one to "
            "turn; this is no evidence of robustness: a model that decides alike for everyone is "
            "a utility problem (see the balanced accuracy), and the bank's cut-off "
            "(model.decision_threshold), where it refuses some applicants, gives evasion victims")


def few_victims(outs: list[dict[str, Any]]) -> list[str]:
    """A note when a success is a share of few victims (fewer than :data:`FEW_VICTIMS` over its
    seeds: an evasion's victims, the feedback loop's targets): the count and the exact 95%
    interval, so a level read off 3 of 3 is seen as the indication it is.

    Example:
        >>> few_victims([{"status": "done", "result": {"success": 1.0,
        ...               "metrics": {"n_victims": 3.0}}}])[0].split(";")[0]
        'measured on 3 victim(s) only: 3 succeeded, 95% interval 0.29-1.00'
        >>> few_victims([{"status": "done", "result": {"success": 0.4,
        ...               "metrics": {"n_targets": 5.0}}}])[0].split(";")[0]
        'measured on 5 target(s) only: 2 succeeded, 95% interval 0.05-0.85'
    """
    from finmlsec.metrics import clopper_pearson

    done = [o for o in outs if _success(o) is not None]
    metrics = [((o.get("result") or {}).get("metrics") or {}) for o in done]
    key = "n_targets" if metrics and all("n_targets" in m for m in metrics) else "n_victims"
    raw = [m.get(key) for m in metrics]
    if not done or any(x is None for x in raw):
        return []
    ns = [float(x) for x in raw if x is not None]
    n = int(sum(ns))
    if n == 0 or n >= FEW_VICTIMS:
        return []
    # the victims turned: the raw rate where the success is rated on a lift over chance
    rates = [((o.get("result") or {}).get("metrics") or {}).get("success_rate", _success(o))
             for o in done]
    k = int(round(sum(float(r or 0.0) * x for r, x in zip(rates, ns, strict=True))))
    lo, hi = clopper_pearson(k, n)
    if key == "n_targets":
        return [f"measured on {n} target(s) only: {k} succeeded, 95% interval {lo:.2f}-{hi:.2f}; "
                "the level is indicative (the standard and thorough profiles attack more "
                "targets)"]
    return [f"measured on {n} victim(s) only: {k} succeeded, 95% interval {lo:.2f}-{hi:.2f}; "
            "the level is indicative (give more held-out records the model decides against "
            "to measure it)"]


def _either_direction(outcome: dict[str, Any]) -> bool:
    """Whether an evasion counted flips in both directions (no favourable outcome declared)."""
    notes = (outcome.get("result") or {}).get("notes") or ()
    return any("in either direction" in str(n) for n in notes)


def lower_bound_reasons(t: dict[str, Any], attacks: list[dict[str, Any]]) -> list[str]:
    """Why a threat's measured risk is only a lower bound (empty when it is not): the profile
    left out attacks that could have run, or no attack that ran did so at full strength
    (reference-model attacks with fewer than 64 reference models).

    Example:
        >>> lower_bound_reasons({"not_run": ["extraction.learning"]}, [])
        ['stronger attacks not run by this profile: extraction.learning']
        >>> lower_bound_reasons({}, [{"success": 0.1, "metrics": {"lower_bound": 1.0}}])
        ['no attack ran at full strength (reference-model attacks need 64 reference models)']
        >>> lower_bound_reasons({}, [{"success": 0.1, "metrics": {}}])
        []
    """
    reasons = []
    if t.get("not_run"):
        reasons.append("stronger attacks not run by this profile: " + ", ".join(t["not_run"]))
    done = [a for a in attacks if a["success"] is not None]
    if done and all(a["metrics"].get("lower_bound") for a in done):
        reasons.append("no attack ran at full strength (reference-model attacks need 64 "
                       "reference models)")
    return reasons


def _decides_alike(c: dict[str, Any], baseline: dict[str, float] | None) -> bool:
    """Whether countermeasure ``c``'s model gives every test record the same decision where the
    deployed model did not (its attack success may fall to nothing, and its ROC AUC stay within
    the limit, while it no longer decides anything)."""
    n = (c.get("utility") or {}).get("classes_decided")
    n0 = (baseline or {}).get("classes_decided")
    return n is not None and n <= 1 and (n0 is None or n0 > 1)


def _decide(t: dict[str, Any], success: float | None, cms: list[dict[str, Any]],
            max_drop: float, metric: str = "accuracy",
            baseline: dict[str, float] | None = None) -> dict[str, Any]:
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
    helps = [c for c in cms if c["success"] is not None and (c.get("effect") or {}).get(
        "significant")]
    idle = [c for c in cms if c["success"] is not None and c not in helps]
    noise = "".join(
        f"; {' + '.join(c['defences'])}: "
        f"{(c.get('effect') or {}).get('words') or 'no measurable effect'}" for c in idle)
    alike = [c for c in helps if _decides_alike(c, baseline)]
    helps = [c for c in helps if c not in alike]
    noise = "".join(
        f"; {' + '.join(c['defences'])}: lowers success ({success:.3f} -> {c['success']:.3f}) "
        "only by deciding alike for every test record (one class for all; balanced accuracy "
        f"{(c.get('utility') or {}).get('balanced_accuracy', float('nan')):.3f}): it removes the "
        "decision, not the attack" for c in alike) + noise
    ok = [c for c in helps
          if c["utility_drop"] is None or c["utility_drop"] <= max_drop]
    noise += "".join(
        f"; {' + '.join(c['defences'])}: lowers success beyond noise ({success:.3f} -> "
        f"{c['success']:.3f}) but costs {c['utility_drop']:+.3f} {metric}, more than "
        f"{max_drop:.2f}" for c in helps if c not in ok)
    # the lowest residual risk level first; within a level the cheapest (a risk manager buys
    # the level, not the third decimal), then the lower success and the fewer components
    ok.sort(key=lambda c: (LEVELS.index(c["risk"]), c["utility_drop"] or 0.0, c["success"],
                           len(c["defences"])))
    masked = [c for c in ok if set(c["defences"]) & MASKING.keys()]
    ok = [c for c in ok if not set(c["defences"]) & MASKING.keys()]
    caveat = "".join(
        f"; not recommended although it lowered success to {c['success']:.3f}: "
        f"{' + '.join(c['defences'])} ({'; '.join(MASKING[d] for d in c['defences'] if d in MASKING)})"
        for c in masked[:1])
    best = ok[0] if ok else None
    if best is not None:
        cost = "n/a" if best["utility_drop"] is None else f"{best['utility_drop']:+.3f}"
        left = f"; residual risk {best['risk']}" + (
            ": add further measures or accept it explicitly" if at_least(best["risk"], "medium")
            else "")
        sig = best["effect"]
        return {
            "decision": "mitigate", "residual_risk": best["risk"], "best": best["defences"],
            "recommendation": f"apply {' + '.join(best['defences'])}: success {success:.3f} -> "
                              f"{best['success']:.3f} (beyond noise: a fall of "
                              f"{sig['difference']:.3f}, standard error "
                              f"{sig['standard_error']:.3f}), {metric} cost {cost}{left}{caveat}"
                              f"{noise}",
        }
    return {"decision": "mitigate", "residual_risk": risk, "best": None,
            "recommendation": "no countermeasure tried lowers the risk beyond noise at an "
                              f"acceptable utility cost (at most {max_drop:.2f} {metric}); "
                              f"escalate: restrict access or accept the loss explicitly"
                              f"{caveat}{noise}"}
