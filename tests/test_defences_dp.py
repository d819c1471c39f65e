"""DP logistic regression and DP-SGD: accounting, sensitivity, the defence contract, and the
soundness of the empirical privacy loss against the guarantee."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from threadpoolctl import threadpool_limits

from finmlsec.attacks import ATTACKS, AttackData, Labeled
from finmlsec.datasets import load
from finmlsec.defences import DEFENCES, apply
from finmlsec.defences.dp import (
    LOGISTIC_C,
    DPLogisticRegression,
    _lr_objective,
    _PrivateLR,
    calibrate_noise,
    gaussian_epsilon,
    objective_noise,
)
from finmlsec.errors import CapabilityError, ConfigError
from finmlsec.metrics import empirical_epsilon
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
    far = _PrivateLR(epsilon=1e9, l2=0.05, random_state=0)  # no noise to speak of
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


def test_objective_perturbation_budget_and_extra_regularisation() -> None:
    """Chaudhuri et al.'s Algorithm 2: epsilon' = epsilon - log(1 + 2c/(n l2) + c^2/(n l2)^2);
    when that is not positive, Delta = c / (n (e^(epsilon/4) - 1)) - l2 and epsilon' = eps / 2."""
    n, lam = 500, 0.03
    e, extra = objective_noise(3.0, n, lam)
    r = 2 * LOGISTIC_C / (n * lam)
    assert extra == 0.0 and e == pytest.approx(3.0 - np.log(1 + r + r * r / 4))
    e, extra = objective_noise(0.1, n, 1e-3)
    assert e == 0.05 and extra == pytest.approx(0.25 / (n * np.expm1(0.025)) - 1e-3) and extra > 0
    X, y = _blobs()
    m = _PrivateLR(epsilon=0.1, l2=1e-3, method="objective", random_state=0).fit(X, y)
    assert m.privacy_.extra_l2 == pytest.approx(extra / 1 if len(y) == n else
                                                objective_noise(0.1, len(y), 1e-3)[1])
    assert m.privacy_.delta == 0.0 and m.privacy_.epsilon == 0.1


def test_objective_perturbation_draws_the_papers_noise() -> None:
    """The released weights are the exact minimiser of the objective plus b.w / n: recover b from
    the gradient of the unperturbed objective there; its norm is Gamma(d, 2 / epsilon') (mean
    2d / epsilon', standard deviation 2 sqrt(d) / epsilon') and its direction is uniform."""
    from scipy.special import expit

    X, y = _blobs(200, seed=3)
    lam, eps = 0.05, 2.0
    norms, dirs = [], []
    with threadpool_limits(1):
        fits = [_PrivateLR(epsilon=eps, l2=lam, method="objective", random_state=seed).fit(X, y)
                for seed in range(150)]
    for m in fits:
        w, Z = m.weights_[0], m._features(X)
        s = np.where(y == 1, 1.0, -1.0)
        grad = lam * w - (Z.T @ (s * expit(-s * (Z @ w)))) / len(Z)
        b = -grad * len(Z)
        norms.append(np.linalg.norm(b))
        dirs.append(b / np.linalg.norm(b))
    d = X.shape[1] + 1
    e, _ = objective_noise(eps, len(y), lam)
    se = 2 * np.sqrt(d) / e / np.sqrt(len(norms))
    assert abs(np.mean(norms) - 2 * d / e) < 4 * se
    assert np.abs(np.mean(dirs, axis=0)).max() < 0.25  # no preferred direction
    # seeded; far from noise-free at this epsilon, equal to the non-private fit at a huge one
    a = DPLogisticRegression(method="objective", epsilon=2.0, random_state=1).fit(X, y)
    b2 = DPLogisticRegression(method="objective", epsilon=2.0, random_state=1).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b2.predict_proba(X))
    free = _lr_objective(m._features(X), np.where(y == 1, 1.0, -1.0), lam)
    loose = _PrivateLR(epsilon=1e9, l2=lam, method="objective", random_state=0).fit(X, y)
    np.testing.assert_allclose(loose.weights_[0], free, atol=1e-5)


def test_objective_perturbation_multiclass_and_pipeline() -> None:
    X, y = _blobs()
    y3 = np.digitize(X[:, 0], [-0.5, 0.5])
    m = DPLogisticRegression(epsilon=3.0, method="objective", random_state=0).fit(X, y3)
    assert m.privacy_.releases == 3 and m.privacy_.epsilon == 3.0
    assert m.predict_proba(X).shape == (400, 3)
    with pytest.raises(ConfigError, match="method"):
        DPLogisticRegression(method="gradient").fit(X, y)


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


@pytest.mark.parametrize("method", ["output", "objective"])
@pytest.mark.parametrize("eps", [1.0, 3.0, 8.0])
def test_empirical_bound_never_exceeds_the_dp_guarantee(credit: dict, eps: float,
                                                        method: str) -> None:
    data = AttackData(schema=credit["schema"], members=credit["members"],
                      nonmembers=credit["nonmembers"])
    for seed in range(3):
        model = DPLogisticRegression(credit["make"](), epsilon=eps, method=method,
                                     random_state=seed).fit(
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


# --- a direct audit: neighbouring data sets, many trainings ---------------------------------
#
# One record (the canary) is in one data set and not in its neighbour; each is trained on many
# times with fresh noise and the canary's score is recorded. Any (epsilon, delta)-DP training
# bounds how well the scores tell the two apart, so the empirical lower bound must stay at or
# below the claimed epsilon; the same audit of a training whose noise is (nearly) off proves far
# more, so the audit can fail.


def _neighbours(n: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Records on the second axis only; the neighbour replaces the first by a canary on the first
    axis with label 1: only the canary moves the weight of the first feature."""
    X = np.zeros((n, 2), dtype=np.float32)
    X[:, 1] = np.where(np.arange(n) % 2, 0.8, -0.8)
    y = (np.arange(n) % 2).astype(int)
    X2, y2 = X.copy(), y.copy()
    X2[0], y2[0] = (1.0, 0.0), 1
    return X, y, X2, y2


def _audit(score: Any, runs: int) -> float:
    X, y, X2, y2 = _neighbours()
    with threadpool_limits(1):  # tiny fits: threaded BLAS only adds overhead on a busy machine
        scores = [score(X, y, s) for s in range(runs)] + [score(X2, y2, s) for s in range(runs)]
    labels = np.r_[np.zeros(runs), np.ones(runs)]
    return float(empirical_epsilon(labels, np.array(scores), delta=1e-5)["epsilon_lower"])


@pytest.mark.parametrize("method", ["output", "objective"])
def test_dp_lr_canary_audit_stays_below_the_claim(method: str) -> None:
    canary = np.array([[1.0, 0.0]])

    def trained_at(eps: float) -> Any:
        return lambda X, y, s: float(DPLogisticRegression(
            epsilon=eps, method=method, random_state=s).fit(X, y).predict_proba(canary)[0, 1])

    assert _audit(trained_at(1.0), 200) <= 1.0
    assert _audit(trained_at(1e4), 200) > 1.5  # noise all but off: the audit sees it


@pytest.fixture()
def one_torch_thread() -> Any:
    torch = pytest.importorskip("torch")
    pytest.importorskip("opacus")
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny fits: threads only add overhead on a busy machine
    yield torch
    torch.set_num_threads(before)


def test_dp_sgd_canary_audit_stays_below_the_claim(one_torch_thread: Any) -> None:
    """DP-SGD through Opacus, white-box: a linear model whose first-feature weights only the
    canary's clipped gradient (and the noise) can move; the score is how far the canary's logit
    moved from the seed's initial weights. Sound at epsilon 1 (the calibrated noise, all steps
    accounted); the same trainings with the noise multiplier set to 0 are told apart."""
    from finmlsec.targets.torch import ARCHITECTURES
    from finmlsec.targets.torch_estimator import TorchClassifier

    kw = {"in_features": 2, "n_classes": 2, "hidden": []}

    def net(seed: int) -> TorchClassifier:
        return TorchClassifier(architecture="mlp", kwargs=kw, epochs=3, batch_size=10, lr=0.1,
                               input_kind="tabular", random_state=seed)

    def moved(model: TorchClassifier, seed: int) -> float:
        one_torch_thread.manual_seed(seed)  # the initial weights of this seed, as fit draws them
        w0 = ARCHITECTURES.get("mlp")(**kw)[1].weight.detach().numpy()
        w1 = model.module_[1].weight.detach().numpy()
        return float((w1[1, 0] - w1[0, 0]) - (w0[1, 0] - w0[0, 0]))

    def dp(X: np.ndarray, y: np.ndarray, s: int) -> float:
        m = DEFENCES.get("dp.sgd")(net(s), epsilon=1.0).fit(X, y)
        assert m.privacy_.epsilon <= 1.0 and m.privacy_.releases == 6  # q = 10/20, 3 epochs
        return moved(m.estimator_, s)

    def noise_off(X: np.ndarray, y: np.ndarray, s: int) -> float:
        private = {"noise_multiplier": 0.0, "max_grad_norm": 1.0, "sample_rate": 0.5, "steps": 6}
        return moved(net(s).set_params(private=private).fit(X, y), s)

    assert _audit(dp, 100) <= 1.0
    assert _audit(noise_off, 100) > 1.5
