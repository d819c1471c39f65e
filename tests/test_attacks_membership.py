"""Membership inference on German credit: real models, small budgets, real effects."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from finmlsec.attacks import ATTACKS, AttackData, Labeled
from finmlsec.datasets import load
from finmlsec.errors import BudgetExceededError, CapabilityError, ConfigError
from finmlsec.schema import preprocessor
from finmlsec.targets.oracle import Oracle


def _factory(schema: Any, est: Any) -> Any:
    from sklearn.base import clone

    def make() -> Pipeline:
        return Pipeline([("prep", preprocessor(schema)), ("model", clone(est))])

    return make


@pytest.fixture(scope="module")
def credit() -> dict[str, Any]:
    ds = load("german_credit")
    perm = np.random.default_rng(1).permutation(len(ds))
    tr, out, strict_pop = perm[:200], perm[200:400], perm[400:700]
    X, y = ds.X, np.asarray(ds.y)
    rf = _factory(ds.schema, RandomForestClassifier(n_estimators=40, random_state=0, n_jobs=1))
    lr = _factory(ds.schema, LogisticRegression(max_iter=1000))
    members = Labeled(X.iloc[tr].reset_index(drop=True), y[tr])
    nonmembers = Labeled(X.iloc[out].reset_index(drop=True), y[out])
    pool = Labeled(pd.concat([members.X, nonmembers.X], ignore_index=True),
                   np.concatenate([members.y, nonmembers.y]))
    standard = AttackData(schema=ds.schema, population=pool, members=members,
                          nonmembers=nonmembers, model_factory=rf)
    strict = AttackData(schema=ds.schema, members=members, nonmembers=nonmembers,
                        model_factory=rf,
                        population=Labeled(X.iloc[strict_pop].reset_index(drop=True),
                                           y[strict_pop]))
    return {"rf": rf().fit(members.X, members.y), "lr": lr().fit(members.X, members.y),
            "lr_factory": lr, "standard": standard, "strict": strict}


def test_lira_online_beats_chance_clearly_on_an_overfit_forest(credit: dict) -> None:
    oracle = Oracle(credit["rf"])
    r = ATTACKS.get("membership.lira")(n_reference=16).run(
        oracle, credit["standard"])
    assert r.metrics["auc"] > 0.85 and r.metrics["tpr_at_1%_fpr"] > 0.1
    assert r.queries == oracle.queries_used == 400
    assert "online" in r.notes[-1]
    roc = r.curves["roc"]
    assert roc["fpr"][0] == 0.0 and roc["tpr"][-1] == 1.0 and len(roc["fpr"]) == len(roc["tpr"])
    assert r.success == pytest.approx(2 * r.metrics["auc"] - 1)
    # the audit: a lower bound on epsilon at delta 1e-5, 95% confidence, below its point estimate
    assert r.metrics["empirical_epsilon_delta"] == 1e-5
    assert r.metrics["empirical_epsilon_confidence"] == 0.95
    assert 0.5 < r.metrics["empirical_epsilon"] <= r.metrics["empirical_epsilon_point"]


def test_lira_offline_in_the_strict_setting(credit: dict) -> None:
    r = ATTACKS.get("membership.lira")(n_reference=8).run(Oracle(credit["rf"]), credit["strict"])
    assert "offline" in r.notes[-1]
    assert r.metrics["auc"] > 0.75
    with pytest.raises(ConfigError, match="online LiRA needs every candidate"):
        ATTACKS.get("membership.lira")(n_reference=4, mode="online").run(
            Oracle(credit["rf"]), credit["strict"])


def test_rmia_and_calibration_beat_the_plain_loss(credit: dict) -> None:
    plain = ATTACKS.get("membership.metric")().run(Oracle(credit["rf"]), credit["standard"])
    calibrated = ATTACKS.get("membership.metric")(reference="per_example", n_reference=4).run(
        Oracle(credit["rf"]), credit["standard"])
    rmia = ATTACKS.get("membership.rmia")(n_reference=4, n_population=400).run(
        Oracle(credit["rf"]), credit["standard"])
    assert calibrated.metrics["auc"] > plain.metrics["auc"] > 0.6
    assert rmia.metrics["auc"] > plain.metrics["auc"]


def test_weak_leakage_of_a_logistic_regression_is_reported_as_weak(credit: dict) -> None:
    data = AttackData(**{**credit["standard"].__dict__, "model_factory": credit["lr_factory"]})
    r = ATTACKS.get("membership.lira")(n_reference=8).run(Oracle(credit["lr"]), data)
    assert 0.4 < r.metrics["auc"] < 0.75


def test_shadow_models_and_population_reference(credit: dict) -> None:
    shadow = ATTACKS.get("membership.shadow")(n_shadow=4).run(Oracle(credit["rf"]),
                                                             credit["standard"])
    assert shadow.metrics["auc"] > 0.75
    pop = ATTACKS.get("membership.metric")(reference="population").run(
        Oracle(credit["rf"], budget=300), credit["standard"])
    assert pop.queries <= 300 and pop.metrics["auc"] > 0.6


def test_label_only_needs_only_labels_and_plans_within_the_budget(credit: dict) -> None:
    oracle = Oracle(credit["rf"], access="label", budget=1100)
    r = ATTACKS.get("membership.label_only")(n_perturb=10, calibrate=True, n_reference=4).run(
        oracle, credit["standard"])
    assert oracle.queries_used <= 1100 and r.metrics["members"] + r.metrics["nonmembers"] == 100
    assert r.metrics["auc"] > 0.55


def test_budget_too_small_and_missing_needs_are_refused_before_querying(credit: dict) -> None:
    oracle = Oracle(credit["rf"], budget=1)
    with pytest.raises(BudgetExceededError, match="at least 2 queries"):
        ATTACKS.get("membership.metric")().run(oracle, credit["standard"])
    assert oracle.queries_used == 0
    oracle = Oracle(credit["rf"], access="label")
    with pytest.raises(CapabilityError, match="membership.label_only"):
        ATTACKS.get("membership.lira")().run(oracle, credit["standard"])
    data = AttackData(**{**credit["standard"].__dict__, "model_factory": None})
    with pytest.raises(CapabilityError, match="model_factory"):
        ATTACKS.get("membership.metric")(reference="per_example").run(Oracle(credit["rf"]), data)


@pytest.mark.parametrize("name, params, message", [
    ("membership.lira", {"n_reference": 1}, "'n_reference' parameter of LiRA must be an int in"),
    ("membership.lira", {"mode": "both"}, "'mode' parameter of LiRA must be one of"),
    ("membership.metric", {"signal": "margin"}, "'signal' parameter of MetricAttack"),
    ("membership.rmia", {"gamma": 0.5}, "'gamma' parameter of RMIA must be a float >= 1"),
    ("membership.label_only", {"p_change": 2.0}, "'p_change' parameter of LabelOnly"),
])
def test_bad_parameters_are_named(credit: dict, name: str, params: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ATTACKS.get(name)(**params).run(Oracle(credit["rf"]), credit["standard"])
