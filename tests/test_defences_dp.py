"""DP logistic regression and DP-SGD: accounting, sensitivity, the defence contract, and the
soundness of the empirical privacy loss against the guarantee."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline

from finmlsec.attacks import ATTACKS, AttackData, Labeled
from finmlsec.datasets import load
from finmlsec.defences import DEFENCES, apply
from finmlsec.defences.dp import (
    DPLogisticRegression,
    _OutputPerturbedLR,
    calibrate_noise,
    gaussian_epsilon,
)
from finmlsec.errors import CapabilityError
from finmlsec.schema import preprocessor
from finmlsec.targets.oracle import Oracle


def _blobs(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    return X, (X[:, 0] - X[:, 1] + 0.3 * rng.normal(size=n) > 0).astype(int)


def test_registered_as_the_dp_countermeasure() -> None:
    for name in ("dp.logistic_regression", "dp.sgd"):
        cls = DEFENCES.get(name)
        assert cls.countermeasure == "pate" and "infer_training_data" in cls.counters
    assert DEFENCES.get("dp.sgd").neural_only
    # a profile that tries one DP training keeps trying PATE first; DP LR is for tabular models
    ranks = [DEFENCES.get(n).rank for n in ("pate", "dp.sgd", "dp.logistic_regression")]
    assert ranks == sorted(ranks) and len(set(ranks)) == 3
    assert DEFENCES.get("dp.logistic_regression").input_kinds == ("tabular",)


@pytest.mark.parametrize("eps", [1.0, 3.0, 8.0])
def test_noise_is_calibrated_to_the_target_epsilon(eps: float) -> None:
    nm = calibrate_noise(eps, 1e-5, 1)
    assert gaussian_epsilon(nm, 1, 1e-5) <= eps
    assert gaussian_epsilon(nm * 0.99, 1, 1e-5) > eps  # and not wastefully more noise
    sgd = calibrate_noise(eps, 1e-5, 200, 0.05)
    assert gaussian_epsilon(sgd, 200, 1e-5, 0.05) <= eps


def test_sensitivity_bound_holds_when_one_record_is_replaced() -> None:
    """The exact minimisers on neighbouring data sets are at most 2 / (n l2) apart."""
    X, y = _blobs()
    far = _OutputPerturbedLR(epsilon=1e9, l2=0.05, random_state=0)  # no noise to speak of
    w0 = far.fit(X, y).weights_.copy()
    bound = 2 / (len(y) * 0.05)
    worst = 0.0
    for i in range(10):
        X2, y2 = X.copy(), y.copy()
        X2[i] = -X[i] * 100  # an outlier with the opposite label
        y2[i] = 1 - y[i]
        worst = max(worst, float(np.linalg.norm(far.fit(X2, y2).weights_ - w0)))
    assert 0 < worst <= bound


def test_dp_lr_accounting_seeding_and_multiclass() -> None:
    X, y = _blobs()
    a = DPLogisticRegression(epsilon=3.0, random_state=1).fit(X, y)
    b = DPLogisticRegression(epsilon=3.0, random_state=1).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    assert a.privacy_.epsilon <= 3.0 and a.privacy_.epsilon == pytest.approx(3.0, abs=0.01)
    assert a.privacy_.releases == 1 and a.privacy_.sensitivity == pytest.approx(2 / (400 * 0.03))
    loose = DPLogisticRegression(epsilon=1000.0, random_state=1).fit(X, y)
    tight = DPLogisticRegression(epsilon=0.1, random_state=1).fit(X, y)
    assert loose.score(X, y) > 0.9 > tight.score(X, y)
    assert tight.privacy_.noise_multiplier > a.privacy_.noise_multiplier
    y3 = np.digitize(X[:, 0], [-0.5, 0.5])
    m = DPLogisticRegression(epsilon=3.0, random_state=0).fit(X, y3)
    assert m.privacy_.releases == 3 and m.predict_proba(X).shape == (400, 3)


def test_dp_lr_keeps_a_pipelines_preprocessing() -> None:
    d = load("german_credit")
    X, y = d.X.iloc[:300], np.asarray(d.y)[:300]
    m = apply(DEFENCES.get("dp.logistic_regression")(random_state=0),
              make_pipeline(preprocessor(d.schema, categories="data"),
                            LogisticRegression()), X, y)
    assert isinstance(m.estimator_, Pipeline)
    assert m.estimator_.steps[-1][0] == "dp_logistic_regression"
    assert m.predict_proba(X).shape == (300, 2)


def test_dp_sgd_trains_a_torch_model_with_its_guarantee() -> None:
    pytest.importorskip("opacus")
    from finmlsec.targets.torch_estimator import TorchClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    base = TorchClassifier(architecture="mlp", kwargs={"in_features": 6, "n_classes": 2,
                                                       "hidden": [16]},
                           epochs=3, batch_size=50, lr=1e-2, input_kind="tabular")
    m = DEFENCES.get("dp.sgd")(base, epsilon=8.0).fit(X, y)
    r = m.privacy_
    assert r.epsilon <= 8.0 and r.epsilon > 7.5 and r.sample_rate == pytest.approx(50 / 300)
    assert r.releases == 18  # 3 epochs at q = 1/6
    assert isinstance(m.estimator_, TorchClassifier) and m.estimator_.private is not None
    assert float((m.predict(X) == y).mean()) > 0.7
    assert m.estimator_.gradient(X[:2], y[:2]).shape == (2, 6)  # still a white-box target
    with pytest.raises(CapabilityError, match="torch"):
        DEFENCES.get("dp.sgd")(LogisticRegression()).fit(X, y)


# --- soundness: the empirical lower bound never exceeds the guarantee -----------------------


@pytest.fixture(scope="module")
def credit() -> dict[str, Any]:
    d = load("german_credit")
    perm = np.random.default_rng(0).permutation(len(d))
    X, y = d.X, np.asarray(d.y)
    mem, non = perm[:400], perm[400:800]

    def make() -> Pipeline:
        return make_pipeline(preprocessor(d.schema, categories="data"),
                             LogisticRegression(max_iter=1000))

    return {"schema": d.schema, "make": make,
            "members": Labeled(X.iloc[mem].reset_index(drop=True), y[mem]),
            "nonmembers": Labeled(X.iloc[non].reset_index(drop=True), y[non])}


@pytest.mark.parametrize("eps", [1.0, 3.0, 8.0])
def test_empirical_bound_never_exceeds_the_dp_guarantee(credit: dict, eps: float) -> None:
    data = AttackData(schema=credit["schema"], members=credit["members"],
                      nonmembers=credit["nonmembers"])
    for seed in range(3):
        model = DPLogisticRegression(credit["make"](), epsilon=eps, random_state=seed).fit(
            credit["members"].X, credit["members"].y)
        r = ATTACKS.get("membership.metric")().run(Oracle(model), data)
        assert r.metrics["empirical_epsilon"] <= eps, (seed, r.metrics["empirical_epsilon"])


def test_the_bound_is_large_on_an_overfit_forest(credit: dict) -> None:
    from sklearn.ensemble import RandomForestClassifier

    model = make_pipeline(preprocessor(credit["schema"], categories="data"),
                          RandomForestClassifier(n_estimators=200, random_state=0, n_jobs=1))
    model.fit(credit["members"].X, credit["members"].y)
    data = AttackData(schema=credit["schema"], members=credit["members"],
                      nonmembers=credit["nonmembers"])
    m = ATTACKS.get("membership.metric")().run(Oracle(model), data).metrics
    # far above what a DP training at epsilon 1 would allow, with 95% confidence
    assert m["empirical_epsilon"] > 1.0 and m["empirical_epsilon_point"] >= m["empirical_epsilon"]
