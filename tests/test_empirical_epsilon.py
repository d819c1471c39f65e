"""The empirical lower bound on epsilon from membership scores (metrics.empirical_epsilon)."""

from __future__ import annotations

import numpy as np
import pytest

from finmlsec.metrics import clopper_pearson_upper, empirical_epsilon


def randomized_response(eps: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores of an eps-DP mechanism: the membership bit, reported truthfully with probability
    e^eps / (1 + e^eps); its best test has FPR = FNR = 1 / (1 + e^eps), so exactly eps."""
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(n // 2), np.zeros(n - n // 2)]
    p = np.exp(eps) / (1 + np.exp(eps))
    truthful = rng.random(n) < p
    return y, np.where(truthful, y, 1 - y).astype(float)


@pytest.mark.parametrize("method", ["split", "bonferroni"])
@pytest.mark.parametrize("eps", [0.5, 2.0, 4.0])
def test_bound_never_exceeds_the_true_epsilon(method: str, eps: float) -> None:
    """At 99.9% confidence no seed exceeds; at 95% at most the expected few do (one in 20)."""
    strict = [empirical_epsilon(*randomized_response(eps, 2000, seed), delta=0.0,
                                confidence=0.999, method=method, seed=seed)["epsilon_lower"]
              for seed in range(20)]
    assert max(strict) <= eps
    assert min(strict) > 0.0  # and it does detect the leak
    usual = [empirical_epsilon(*randomized_response(eps, 2000, seed), delta=0.0,
                               method=method, seed=seed)["epsilon_lower"] for seed in range(40)]
    assert sum(b > eps for b in usual) <= 4
    assert max(usual) <= eps * 1.05


@pytest.mark.parametrize("method", ["split", "bonferroni"])
def test_bound_is_close_to_the_true_epsilon_with_many_samples(method: str) -> None:
    r = empirical_epsilon(*randomized_response(2.0, 200_000, 1), delta=0.0, method=method)
    assert 1.9 <= r["epsilon_lower"] <= 2.0
    assert abs(r["epsilon_point"] - 2.0) < 0.05


def test_separable_scores_give_a_bound_that_grows_with_n() -> None:
    bounds = []
    for n in (100, 1000, 10000):
        y = np.r_[np.ones(n // 2), np.zeros(n // 2)]
        bounds.append(empirical_epsilon(y, y)["epsilon_lower"])
    assert bounds[0] < bounds[1] < bounds[2]
    # no error on the 2500 + 2500 held-out records: FPR_hi = FNR_hi = CP(0 of 2500)
    assert bounds[2] == pytest.approx(
        np.log((1 - 1e-5 - clopper_pearson_upper(0, 2500, 0.025))
               / clopper_pearson_upper(0, 2500, 0.025)), abs=1e-6)


def test_random_scores_give_no_bound() -> None:
    rng = np.random.default_rng(3)
    y = np.r_[np.ones(2000), np.zeros(2000)]
    for seed in range(5):
        r = empirical_epsilon(y, rng.random(4000), seed=seed)
        assert r["epsilon_lower"] < 0.1
        assert r["epsilon_point"] < 0.5


def test_reversed_scores_count_too() -> None:
    """The DP inequality holds both ways: a test that flags non-members also bounds epsilon."""
    y, s = randomized_response(3.0, 20000, 0)
    assert empirical_epsilon(y, -s)["epsilon_lower"] > 2.5


def test_delta_lowers_the_bound_and_confidence_widens_it() -> None:
    y = np.r_[np.ones(500), np.zeros(500)]
    base = empirical_epsilon(y, y)["epsilon_lower"]
    assert empirical_epsilon(y, y, delta=0.01)["epsilon_lower"] < base
    assert empirical_epsilon(y, y, confidence=0.999)["epsilon_lower"] < base


def test_bad_arguments_are_refused() -> None:
    y = np.r_[np.ones(10), np.zeros(10)]
    with pytest.raises(ValueError, match="delta"):
        empirical_epsilon(y, y, delta=1.0)
    with pytest.raises(ValueError, match="confidence"):
        empirical_epsilon(y, y, confidence=1.0)
    with pytest.raises(ValueError, match="method"):
        empirical_epsilon(y, y, method="best")
    with pytest.raises(ValueError, match="both classes"):
        empirical_epsilon(np.ones(4), np.ones(4))
