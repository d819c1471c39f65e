"""A countermeasure is recommended only when it lowers the attack's success beyond noise."""

from __future__ import annotations

from typing import Any

import pytest

from finmlsec.scan.decide import summarize


def _plan(repeats: int = 1, defences: tuple[str, ...] = ("confidence.round",)) -> dict[str, Any]:
    units = []
    for rep in range(repeats):
        tag = f"#{rep + 1}" if rep else ""
        for ds in [(), *((d,) for d in defences)]:
            units.append({
                "id": "induce_false_prediction@model_io/evasion.constrained"
                      + "".join("+" + d for d in ds) + tag,
                "threat": "induce_false_prediction", "via": "model_io",
                "attack": "evasion.constrained", "params": {}, "defences": list(ds),
                "countermeasures": ["cm"] * len(ds), "repeat": rep})
    return {"units": units, "threats": [{
        "attack": "induce_false_prediction", "via": "model_io", "priority": "primary",
        "countermeasures": ["cm"], "decision": "mitigate", "reason": "", "attacked": True,
        "notes": []}]}


def _out(success: float, victims: float | None) -> dict[str, Any]:
    metrics = {} if victims is None else {"n_victims": victims}
    return {"status": "done", "utility": {"accuracy": 0.8},
            "result": {"success": success, "metrics": metrics}}


def _summary(plan: dict[str, Any], figures: list[tuple[float, float | None]]) -> dict[str, Any]:
    outcomes = {u["id"]: _out(*f) for u, f in zip(plan["units"], figures, strict=True)}
    return summarize(plan, outcomes, max_utility_drop=0.05)["threats"][0]


def test_a_no_op_is_never_recommended_and_said_to_have_no_effect() -> None:
    t = _summary(_plan(), [(0.318, 100.0), (0.318, 100.0)])
    cm = t["countermeasures"][0]
    assert cm["effect"]["significant"] is False and cm["effect"]["difference"] == 0
    assert t["best"] is None and t["residual_risk"] == "medium"
    assert "confidence.round: no measurable effect (0.318 -> 0.318)" in t["recommendation"]
    assert "apply" not in t["recommendation"]


@pytest.mark.parametrize(("victims", "recommended"), [(20.0, False), (2000.0, True)])
def test_the_same_fall_counts_only_when_enough_victims_measure_it(
        victims: float, recommended: bool) -> None:
    # 0.60 -> 0.45: 3 of 20 victims is chance, 300 of 2,000 is not
    t = _summary(_plan(), [(0.60, victims), (0.45, victims)])
    eff = t["countermeasures"][0]["effect"]
    assert eff["significant"] is recommended
    assert "binomial" in eff["basis"]
    assert (t["best"] == ["confidence.round"]) is recommended
    if recommended:
        assert t["recommendation"].startswith("apply confidence.round: success 0.600 -> 0.450 "
                                              "(beyond noise")
    else:
        assert "effect not shown beyond noise (0.600 -> 0.450" in t["recommendation"]


def test_seed_to_seed_spread_counts_as_noise() -> None:
    plan = _plan(repeats=2)
    # no victim counts: only the seeds estimate noise. Seeds far apart: no effect shown
    t = _summary(plan, [(0.9, None), (0.5, None), (0.3, None), (0.5, None)])
    eff = t["countermeasures"][0]["effect"]
    assert t["attacks"][0]["seeds"] == 2 and t["success"] == pytest.approx(0.6)
    assert eff["significant"] is False and "seed-to-seed" in eff["basis"]
    # the same means, repeatable seeds: the fall is real
    t = _summary(plan, [(0.61, None), (0.5, None), (0.59, None), (0.5, None)])
    assert t["countermeasures"][0]["effect"]["significant"] is True
    assert t["best"] == ["confidence.round"]


def test_an_effective_but_costly_countermeasure_is_named_with_its_cost() -> None:
    plan = _plan()
    outcomes = {plan["units"][0]["id"]: _out(0.9, 200.0),
                plan["units"][1]["id"]: dict(_out(0.1, 200.0), utility={"accuracy": 0.6})}
    t = summarize(plan, outcomes, max_utility_drop=0.05)["threats"][0]
    assert t["best"] is None
    assert ("confidence.round: lowers success beyond noise (0.900 -> 0.100) but costs +0.200 "
            "accuracy, more than 0.05") in t["recommendation"]


def test_with_no_estimate_of_noise_no_effect_is_established() -> None:
    t = _summary(_plan(), [(0.9, None), (0.1, None)])
    assert t["best"] is None and "effect not established" in t["recommendation"]


def test_profiles_repeat_units_with_other_seeds() -> None:
    from finmlsec.scan.plan import make_plan
    from finmlsec.scan.profiles import get_profile

    analysis = {"type": 1, "threats": [{"attack": "infer_model", "via": "model_io",
                                        "countermeasures": ["modify_confidence"]}]}
    quick = make_plan(analysis, profile=get_profile("quick"))
    standard = make_plan(analysis, profile=get_profile("standard"))
    assert not any("#" in u.id for u in quick.units)
    twos = [u for u in standard.units if u.id.endswith("#2")]
    assert len(twos) == len(standard.units) // 2
    firsts = {u.id: u for u in standard.units}
    for u in twos:
        first = firsts[u.id[:-2]]
        assert u.seed != first.seed and u.baseline_id.endswith("#2")
        if u.defences:
            assert u.defence_seed != first.defence_seed


def test_figures_draw_each_curve_once_when_units_repeat() -> None:
    from finmlsec.report.scan import threat_figures

    def unit(uid: str, defences: list[str]) -> dict[str, Any]:
        return {"id": uid, "threat": "infer_training_data", "via": "model_io",
                "attack": "membership.metric", "defences": defences, "status": "done",
                "params": {}, "budget": 10, "success": 0.2,
                "curves": {"roc": {"fpr": [0.0, 1.0], "tpr": [0.0, 1.0]}}}
    base = "infer_training_data@model_io/membership.metric"
    doc = {"run": {"spec_path": "spec.yaml"}, "reproduce": {"scan": "s", "report": "r"},
           "units": [unit(base, []), unit(base + "#2", []),
                     unit(base + "+confidence.round", ["confidence.round"]),
                     unit(base + "+confidence.round#2", ["confidence.round"])]}
    threat = {"attack": "infer_training_data", "via": "model_io", "success": None,
              "countermeasures": []}
    roc = next(f for f in threat_figures(doc, 0, threat) if f["id"].endswith("roc"))
    assert roc["units"] == f"{base}, {base}+confidence.round"


def test_a_defended_lift_within_noise_on_few_victims_is_no_fall() -> None:
    """Adversarial training that approves most refused applicants leaves 5 victims; the attack
    still turns all 5 (lift 1.0, McNemar p = 0.0625), so its success is counted as 0: that 0
    must not be read as the countermeasure stopping the attack."""
    import numpy as np

    from finmlsec.attacks.evasion_chance import rate

    s20, m20, _ = rate(np.ones(20, dtype=bool), np.full(20, 0.14), np.ones(20, dtype=bool), 100)
    s5, m5, _ = rate(np.ones(5, dtype=bool), np.full(5, 0.176), np.ones(5, dtype=bool), 100)
    assert s20 == 1.0 and s5 == 0.0 and m5["success_estimate"] == pytest.approx(1.0)
    assert "success_estimate" not in m20
    plan = _plan(defences=("adversarial_training",))
    outcomes = {}
    for u, (s, m) in zip(plan["units"], [(s20, m20), (s5, m5)], strict=True):
        outcomes[u["id"]] = {"status": "done", "utility": {"accuracy": 0.8},
                             "result": {"success": s, "metrics": {**m, "n_victims": 20.0 if s
                                                                  else 5.0}}}
    t = summarize(plan, outcomes, max_utility_drop=0.05)["threats"][0]
    cm = t["countermeasures"][0]
    assert cm["success"] == 0.0  # its own rating is unchanged
    assert cm["effect"]["significant"] is False
    assert "no measurable effect (1.000 -> 1.000" in cm["effect"]["words"]
    assert "compared on the lift behind it" in cm["effect"]["words"]
    assert t["best"] is None and "apply" not in t["recommendation"]
    # a defended lift that is genuinely lower still counts: none of 20 victims turned
    s0, m0, _ = rate(np.zeros(20, dtype=bool), np.full(20, 0.14), np.ones(20, dtype=bool), 100)
    outcomes[plan["units"][1]["id"]]["result"] = {"success": s0, "metrics": {**m0,
                                                                             "n_victims": 20.0}}
    t = summarize(plan, outcomes, max_utility_drop=0.05)["threats"][0]
    assert t["countermeasures"][0]["effect"]["significant"] is True
    assert t["best"] == ["adversarial_training"]
