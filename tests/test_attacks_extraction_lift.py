"""The lift of an extraction copy over the no-model copy is tested (McNemar's exact test) before
the scan rates it: a perfect copy of a model that answers alike for almost everyone is no theft
beyond noise."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeClassifier

from finmlsec.attacks import ATTACKS, AttackData, Labeled
from finmlsec.attacks.extraction_common import LIFT_NOISE, lift_test, mcnemar_exact
from finmlsec.scan.decide import summarize
from finmlsec.schema import Feature, FeatureSchema, preprocessor
from finmlsec.targets.oracle import Oracle


def test_mcnemar_exact_is_the_one_sided_binomial_tail() -> None:
    for b, c in [(2, 0), (4, 0), (5, 0), (7, 3), (30, 12), (1, 9)]:
        n = b + c
        tail = sum(math.comb(n, k) for k in range(b, n + 1)) / 2 ** n
        assert mcnemar_exact(b, c) == pytest.approx(tail, rel=1e-9)
    assert mcnemar_exact(2, 0) == 0.25 and mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(4, 0) >= 0.05 > mcnemar_exact(5, 0)  # five wins in a row: beyond noise
    # b and c count only records the two copies get differently right
    target = np.array(["no", "no", "yes", "yes", "no", "yes"])
    copy = np.array(["no", "yes", "yes", "yes", "no", "no"])  # wrong on 1 and 5
    base = np.array(["no", "no", "no", "no", "no", "no"])  # wrong on 2, 3, 5
    r = lift_test(target, copy, base)
    assert (r["fidelity_lift_b"], r["fidelity_lift_c"]) == (2.0, 1.0)  # 2, 3 vs 1 (5: both)
    assert r["fidelity_lift_p"] == pytest.approx(0.5)


SCHEMA = FeatureSchema(features=(Feature(name="balance", type="numeric", min=0, max=100),
                                 Feature(name="calls", type="integer", min=0, max=50)))


def _records(n: int, rng: np.random.Generator, rare: int) -> pd.DataFrame:
    """``n`` records of which ``rare`` have a balance above 99 (the target's rare "yes")."""
    X = pd.DataFrame({"balance": rng.uniform(0, 98, n), "calls": rng.integers(0, 51, n)})
    X.loc[: rare - 1, "balance"] = rng.uniform(99.5, 100, rare)
    return X


@pytest.fixture(scope="module")
def target() -> Pipeline:
    rng = np.random.default_rng(0)
    X = _records(600, rng, 30)
    y = (X["balance"] > 99).astype(int).to_numpy()
    model = DecisionTreeClassifier(max_depth=2, random_state=0)
    return Pipeline([("prep", preprocessor(SCHEMA)), ("model", model)]).fit(X, y)


def _steal(target: Pipeline, rare: int) -> tuple:
    X = _records(300, np.random.default_rng(1), rare)
    test = Labeled(X, np.asarray(target.predict(X)))
    oracle = Oracle(target)
    r = ATTACKS.get("extraction.tree_path")(n_uniform=200).run(
        oracle, AttackData(schema=SCHEMA, test=test))
    unit = {"id": "u", "threat": "steal_model", "via": "model_io",
            "attack": "extraction.tree_path", "defences": [], "params": {},
            "countermeasures": []}
    plan = {"units": [unit],
            "threats": [{"attack": "steal_model", "via": "model_io", "priority": 1,
                         "decision": "mitigate", "reason": "r", "attacked": True,
                         "countermeasures": [], "notes": []}]}
    outcome = {"status": "done", "n_test": 300,
               "result": {"success": r.success, "metrics": r.metrics, "notes": list(r.notes)}}
    return r, summarize(plan, {"u": outcome})["threats"][0]


def test_a_perfect_copy_of_a_near_constant_model_is_not_rated_as_theft(target) -> None:
    r, t = _steal(target, rare=2)
    m = r.metrics
    assert m["fidelity_test"] == 1.0 and m["fidelity_baseline"] == pytest.approx(298 / 300)
    assert m["fidelity_lift"] == 1.0  # the raw lift stays in the metrics
    assert (m["fidelity_lift_b"], m["fidelity_lift_c"], m["fidelity_lift_p"]) == (2.0, 0.0, 0.25)
    assert r.success == 0.0
    note = next(n for n in r.notes if n.startswith(LIFT_NOISE))
    assert "b=2, c=0 records, p=0.25" in note
    assert t["risk"] == "none" and t["decision"] == "accept"
    # the attack's own note stands beside its figure in the threat's summary, not in its notes
    assert t["attacks"][0]["notes"] == list(r.notes) and note in t["attacks"][0]["notes"]
    assert not any(LIFT_NOISE in n for n in t["notes"])


def test_the_same_copy_is_theft_where_enough_records_tell_it_from_the_constant(target) -> None:
    r, t = _steal(target, rare=10)
    m = r.metrics
    assert m["fidelity_test"] == 1.0 and m["fidelity_lift_b"] == 10.0
    assert m["fidelity_lift_p"] < 0.001 and r.success == m["fidelity_lift"] == 1.0
    assert not any(n.startswith(LIFT_NOISE) for n in r.notes)
    assert t["risk"] == "high" and not any(LIFT_NOISE in n for n in t["attacks"][0]["notes"])


def test_the_score_lift_is_measured_against_the_public_copy_when_it_scores_closer() -> None:
    """A copy no closer to the model's scores than a copy of the attacker's public records is no
    theft of the scoring, however much closer than a constant score it is."""
    from finmlsec.attacks.extraction_common import score_fidelity

    class Fixed:
        classes_ = np.array([0, 1])

        def __init__(self, p1: np.ndarray) -> None:
            self.p1 = p1

        def predict_proba(self, X: object) -> np.ndarray:
            return np.column_stack([1 - self.p1, self.p1])

    rng = np.random.default_rng(0)
    truth = rng.uniform(0.05, 0.95, 300)
    target = Fixed(truth)
    copy = Fixed(np.clip(truth + rng.normal(0, 0.08, 300), 0, 1))
    public = np.clip(truth + rng.normal(0, 0.05, 300), 0, 1)
    X = np.zeros((300, 1))
    against_constant = score_fidelity(copy, target, X)
    assert against_constant["score_lift"] > 0.5 and against_constant["score_lift_p"] < 1e-6
    against_public = score_fidelity(copy, target, X,
                                    (np.column_stack([1 - public, public]), ["0", "1"]))
    assert against_public["score_lift"] == 0.0 and against_public["score_lift_p"] > 0.5
    assert against_public["score_distance_baseline"] < against_constant["score_distance_baseline"]
