"""Decisions from unit outcomes: risk levels, the best affordable countermeasure, residual risk."""

from __future__ import annotations

from typing import Any

from finmlsec.scan import at_least, risk_level, summarize


def _unit(threat: str, attack: str, defences: tuple[str, ...] = ()) -> dict[str, Any]:
    uid = f"{threat}@model_io/{attack}" + "".join(f"+{d}" for d in defences)
    return {"id": uid, "threat": threat, "via": "model_io", "attack": attack, "params": {},
            "defences": list(defences), "countermeasures": ["cm"] * len(defences),
            "access": "proba", "budget": 10, "seed": 1}


def _done(success: float, accuracy: float) -> dict[str, Any]:
    return {"status": "done", "result": {"success": success, "metrics": {"auc": success},
                                         "queries": 5, "params": {}},
            "utility": {"accuracy": accuracy}, "error": None, "n_test": 200}


def _threat(attack: str, decision: str = "mitigate", reason: str = "") -> dict[str, Any]:
    return {"attack": attack, "via": "model_io", "priority": "primary",
            "countermeasures": ["cm"], "decision": decision, "reason": reason,
            "attacked": decision != "accept", "notes": []}


def test_levels() -> None:
    assert [risk_level(s) for s in (0.0, 0.05, 0.2, 0.5, 1.0)] == [
        "none", "low", "medium", "high", "high"]
    assert at_least("high", "medium") and not at_least("not_measured", "low")


def test_best_affordable_countermeasure_sets_the_residual_risk() -> None:
    units = [_unit("infer_model", "a"), _unit("infer_model", "b"),
             _unit("infer_model", "a", ("cheap",)), _unit("infer_model", "b", ("cheap",)),
             _unit("infer_model", "a", ("costly",)), _unit("infer_model", "b", ("costly",))]
    outcomes = {
        units[0]["id"]: _done(0.9, 0.80), units[1]["id"]: _done(0.6, 0.80),
        units[2]["id"]: _done(0.3, 0.79), units[3]["id"]: _done(0.1, 0.79),
        units[4]["id"]: _done(0.0, 0.60), units[5]["id"]: _done(0.0, 0.60),
    }
    plan = {"units": units, "threats": [_threat("infer_model")]}
    s = summarize(plan, outcomes, max_utility_drop=0.05)
    t = s["threats"][0]
    assert t["success"] == 0.9 and t["risk"] == "high"  # strongest attack counts
    cheap = next(c for c in t["countermeasures"] if c["defences"] == ["cheap"])
    assert cheap["success"] == 0.3 and abs(cheap["utility_drop"] - 0.01) < 1e-9
    # 'costly' stops the attack but loses 0.2 accuracy: not recommended
    assert t["best"] == ["cheap"] and t["residual_risk"] == "medium"
    assert t["decision"] == "mitigate" and "0.900 -> 0.300" in t["recommendation"]
    assert s["max_risk"] == "high" and s["max_residual_risk"] == "medium"
    assert s["baseline_utility"] == {"accuracy": 0.80}
    # a looser budget for utility picks the costly one
    t2 = summarize(plan, outcomes, max_utility_drop=0.5)["threats"][0]
    assert t2["best"] == ["costly"] and t2["residual_risk"] == "none"


def test_accepted_unmeasured_and_low_risk_threats() -> None:
    units = [_unit("infer_model", "a"), _unit("induce_false_prediction", "e")]
    outcomes = {units[0]["id"]: _done(0.02, 0.8),
                units[1]["id"]: {"status": "skipped", "result": None, "utility": None,
                                 "error": "CapabilityError: needs gradients"}}
    plan = {"units": units, "threats": [
        _threat("infer_model"), _threat("induce_false_prediction"),
        _threat("infer_training_data", "accept", "training data is public"),
    ]}
    low, skipped, accepted = summarize(plan, outcomes)["threats"]
    assert low["risk"] == "none" and low["decision"] == "accept"
    assert skipped["risk"] == "not_measured" and skipped["residual_risk"] == "not_measured"
    assert skipped["attacks"][0]["error"].startswith("CapabilityError")
    assert accepted["decision"] == "accept" and accepted["residual_risk"] == "accepted"
    assert "training data is public" in accepted["recommendation"]


def test_masking_countermeasure_is_reported_but_never_recommended() -> None:
    units = [_unit("induce_false_prediction", "e"),
             _unit("induce_false_prediction", "e", ("defensive_distillation",)),
             _unit("induce_false_prediction", "e", ("adversarial_training",))]
    outcomes = {units[0]["id"]: _done(0.95, 0.98), units[1]["id"]: _done(0.05, 0.97),
                units[2]["id"]: _done(0.6, 0.98)}
    plan = {"units": units, "threats": [_threat("induce_false_prediction")]}
    t = summarize(plan, outcomes, max_utility_drop=0.05)["threats"][0]
    dist = next(c for c in t["countermeasures"] if c["defences"] == ["defensive_distillation"])
    assert dist["success"] == 0.05  # measured and reported as it is
    assert t["best"] == ["adversarial_training"] and t["residual_risk"] == "high"
    assert "not recommended although it lowered success to 0.050" in t["recommendation"]
    assert "masking" in t["recommendation"]
    # with distillation the only countermeasure, nothing is recommended and the risk stays
    only = summarize({"units": units[:2], "threats": [_threat("induce_false_prediction")]},
                     outcomes, max_utility_drop=0.05)["threats"][0]
    assert only["best"] is None and only["residual_risk"] == "high"
    assert "masking" in only["recommendation"]


def test_within_a_risk_level_the_cheapest_countermeasure_is_recommended() -> None:
    units = [_unit("infer_training_data", "m"),
             _unit("infer_training_data", "m", ("pate",)),
             _unit("infer_training_data", "m", ("confidence.label_only",))]
    outcomes = {units[0]["id"]: _done(0.35, 0.75), units[1]["id"]: _done(0.0, 0.706),
                units[2]["id"]: _done(0.01, 0.75)}
    plan = {"units": units, "threats": [_threat("infer_training_data")]}
    t = summarize(plan, outcomes, max_utility_drop=0.05)["threats"][0]
    # both leave risk 'none'; label-only costs nothing, PATE 4.4 points
    assert t["best"] == ["confidence.label_only"] and t["residual_risk"] == "none"


def test_a_countermeasure_that_decides_alike_for_everyone_is_never_recommended() -> None:
    # adversarial training that leaves a model approving everyone: evasion has nothing left to
    # flip (success 0) and the ranking (ROC AUC, the decision metric) barely moves
    units = [_unit("induce_false_prediction", "a"),
             _unit("induce_false_prediction", "a", ("flat",)),
             _unit("induce_false_prediction", "a", ("real",))]

    def out(success: float, auc: float, classes: float) -> dict[str, Any]:
        o = _done(success, 0.8)
        o["utility"] = {"accuracy": 0.8, "roc_auc": auc, "balanced_accuracy": 0.5 if
                        classes == 1 else 0.7, "classes_decided": classes}
        return o

    plan = {"units": units, "threats": [_threat("induce_false_prediction")]}
    outcomes = {units[0]["id"]: out(0.9, 0.80, 2), units[1]["id"]: out(0.0, 0.78, 1),
                units[2]["id"]: out(0.4, 0.79, 2)}
    t = summarize(plan, outcomes, max_utility_drop=0.05)["threats"][0]
    assert t["best"] == ["real"] and t["residual_risk"] == "medium"
    assert "flat: lowers success (0.900 -> 0.000) only by deciding alike" in t["recommendation"]
    # without the other one, nothing is recommended
    del outcomes[units[2]["id"]]
    t = summarize({"units": units[:2], "threats": plan["threats"]}, outcomes)["threats"][0]
    assert t["best"] is None and t["residual_risk"] == "high"
    assert "removes the decision" in t["recommendation"]
    # a deployed model that itself decides alike: the rule does not apply (nothing to remove)
    outcomes[units[0]["id"]] = out(0.9, 0.80, 1)
    t = summarize({"units": units[:2], "threats": plan["threats"]}, outcomes)["threats"][0]
    assert t["best"] == ["flat"]


def test_an_evasion_on_few_victims_carries_its_count_and_interval() -> None:
    """3 of 3 victims is 'high' as a point estimate; the attack's notes give the count and the
    exact 95% interval (0.29-1.00), so the level is read as the indication it is. 40 victims
    over two seeds need no such note."""
    def evaded(success: float, n: float) -> dict[str, Any]:
        out = _done(success, 0.8)
        out["result"]["metrics"] = {"n_victims": n}
        return out

    units = [_unit("induce_false_prediction", "ev")]
    plan = {"units": units, "threats": [_threat("induce_false_prediction")]}
    t = summarize(plan, {units[0]["id"]: evaded(1.0, 3.0)}, max_utility_drop=0.05)["threats"][0]
    a = t["attacks"][0]
    assert a["risk"] == "high"
    assert any("3 victim(s) only: 3 succeeded, 95% interval 0.29-1.00" in n for n in a["notes"])
    t = summarize(plan, {units[0]["id"]: evaded(0.5, 40.0)}, max_utility_drop=0.05)["threats"][0]
    assert not any("victim(s) only" in n for n in t["attacks"][0]["notes"])
