"""Success figures beside their no-model baselines; membership decided at low false-positive
rates as well as on AUC; LiRA's statistic as published."""

from __future__ import annotations

import numpy as np
import pytest

from finmlsec.attacks.membership_common import Candidates, logit_confidence, membership_result
from messy_loans import build_messy_system


def test_lira_statistic_keeps_forest_vote_fractions_apart() -> None:
    votes = np.array([[0.0, 1.0], [0.005, 0.995], [1e-9, 1 - 1e-9]])
    phi = logit_confidence(votes, np.array([1, 1, 1]))
    # clipping at 1e-7 made a unanimous vote (1.0) and 1 - 1e-9 the same +16.1
    assert phi[0] > 100 and phi[2] > 20 and phi[1] == pytest.approx(np.log(0.995 / 0.005))


def test_membership_decides_on_the_worse_of_auc_and_low_fpr() -> None:
    rng = np.random.default_rng(0)
    truth = np.r_[np.ones(1000, int), np.zeros(1000, int)]
    # 30% of the members exposed with certainty, the other members look less like members
    # than the non-members do: the average case (AUC) is near chance
    scores = rng.normal(size=2000)
    scores[:300] = 50.0
    scores[300:1000] -= 0.8
    out = membership_result(scores, Candidates(X=None, y=truth, truth=truth), [],
                            {"reference_models": 8.0})
    m = out.metrics
    assert m["advantage_auc"] < 0.2 and m["tpr_at_1%_fpr"] >= 0.3
    assert out.success == pytest.approx(m["low_fpr_lift"]) and out.success >= 0.29
    assert m["lower_bound"] == 1.0 and any("lower bound" in n for n in out.notes)
    full = membership_result(scores, Candidates(X=None, y=truth, truth=truth), [],
                             {"reference_models": 64.0})
    assert full.metrics["lower_bound"] == 0.0 and not full.notes


def test_extraction_is_rated_on_the_lift_over_a_constant_copy(tmp_path) -> None:
    """On 90/10 data a copy that always approves agrees about 0.9 of the time: fidelity 0.92
    is no theft to speak of."""
    from finmlsec.attacks import ATTACKS
    from finmlsec.scan.work import ScanContext, attack_data_for
    from finmlsec.scenario import load_scenario
    from finmlsec.targets.oracle import Oracle

    sc = load_scenario(build_messy_system(tmp_path)["spec"])
    data = attack_data_for(sc, ScanContext(spec_path="unused"))
    res = ATTACKS.get("extraction.equation")().run(Oracle(sc.target, budget=5000), data)
    m = res.metrics
    pred = np.asarray(sc.target.predict(sc.test.X))
    assert m["baseline_constant"] == pytest.approx(np.mean(pred == "approve"))
    assert "baseline_public" in m and m["fidelity_baseline"] >= m["baseline_constant"]
    base = m["fidelity_baseline"]
    assert res.success == pytest.approx(max(0.0, (m["fidelity_test"] - base) / (1 - base)))
    assert m["baseline_constant"] > 0.85  # a constant copy's raw fidelity alone reads "high"


def test_a_lower_bound_is_said_in_the_decision() -> None:
    from finmlsec.scan.decide import summarize

    plan = {"units": [{"id": "u", "threat": "infer_training_data", "via": "model_io",
                       "attack": "membership.rmia", "defences": [], "params": {},
                       "countermeasures": []}],
            "threats": [{"attack": "infer_training_data", "via": "model_io", "priority": 1,
                         "decision": "mitigate", "reason": "r", "attacked": True,
                         "countermeasures": [], "notes": []}]}
    outcome = {"status": "done", "result": {"success": 0.03, "metrics": {"lower_bound": 1.0}}}
    t = summarize(plan, {"u": outcome})["threats"][0]
    assert t["risk"] == "none"
    assert "lower bound" in t["recommendation"]
    outcome["result"]["metrics"]["lower_bound"] = 0.0
    t = summarize(plan, {"u": outcome})["threats"][0]
    assert "lower bound" not in t["recommendation"]


