"""Differentially private training: DP logistic regression and DP-SGD.

Both are the catalogue's countermeasure ``pate`` ("use an ML algorithm such as PATE": training
whose output is differentially private with respect to one training record) and are accounted
with ``dp_accounting``'s RDP accountant, as :mod:`finmlsec.defences.pate`. The guarantee is
(``epsilon``, ``delta``)-DP under *replace-one* adjacency (two training sets of the same size that
differ in one record); ``privacy_`` reports it.

``dp.logistic_regression`` (:class:`DPLogisticRegression`): L2-regularised logistic regression
made private in one of two ways (Chaudhuri, Monteleoni and Sarwate 2011), chosen by ``method``.
Both rest on the same preparation of the records, enforced by the code:

* every record's numeric features ``x`` (after the preprocessing steps of a ``Pipeline``
  estimator) are clipped to L2 norm ``clip_norm`` (default 1: standardised and one-hot features
  have norms of 4 or more, so every record is in effect scaled to unit norm) and divided by it;
  the intercept is a constant feature; the vector ``[x, 1] / sqrt(2)`` then has norm at most 1;
* the objective is ``l2 / 2 |w|^2 + mean loss``; its minimiser is computed to a gradient norm of
  1e-10 (the residual optimisation error is not accounted, as in the paper).

``method="output"`` (the default; the paper's Algorithm 1 with Gaussian instead of Laplace-norm
noise), (``epsilon``, ``delta``)-DP:

* the logistic loss is 1-Lipschitz and the objective is ``l2``-strongly convex, so replacing one
  record moves the exact minimiser by at most ``2 / (n l2)`` in L2 norm;
* Gaussian noise of standard deviation ``noise_multiplier * 2 / (n l2)`` is added to the
  weights; the noise multiplier is the smallest for which the RDP accountant gives
  (``epsilon``, ``delta``) (with k > 2 classes, one-vs-rest: k such releases, composed).

``method="objective"`` (the paper's Algorithm 2, objective perturbation), pure ``epsilon``-DP
(``privacy_.delta`` is 0; it holds at every delta):

* the minimiser of ``l2 / 2 |w|^2 + mean loss + b.w / n + Delta / 2 |w|^2`` is released, with
  ``b`` of uniform direction and norm drawn from Gamma(d, 2 / epsilon'), d the number of weights;
* ``epsilon' = epsilon - log(1 + 2c / (n l2) + c^2 / (n l2)^2)`` with ``c = 1/4`` (the logistic
  loss's second derivative is at most 1/4) and ``Delta = 0``; when that leaves nothing
  (``epsilon' <= 0``), ``Delta = c / (n (exp(epsilon / 4) - 1)) - l2`` and ``epsilon' = epsilon
  / 2`` (:func:`objective_noise`; ``privacy_.extra_l2`` is Delta);
* with k > 2 classes, one-vs-rest: k releases at ``epsilon / k`` each.

On German Credit neither meets a 2-point ROC AUC cost at epsilon 3; objective perturbation is the
closer (docs/benchmarks.md). The noise of both grows with the number of weights: one-hot
encodings with many categories cost the most.

Not covered by the guarantee: the preprocessing steps of a ``Pipeline`` are fitted on the
training data as usual (their statistics, e.g. category lists, means and scales, are treated as
public); ``l2`` and ``clip_norm`` must be chosen without looking at the private data (the
defaults were chosen on German Credit, see docs/benchmarks.md).

``dp.sgd`` (:class:`DPSGD`): DP-SGD (Abadi et al. 2016) with Opacus for a torch model
(:class:`~finmlsec.targets.torch_estimator.TorchClassifier`): Poisson-sampled mini-batches
(sampling rate ``batch_size / n``), per-example gradients clipped to ``max_grad_norm``, Gaussian
noise of ``noise_multiplier * max_grad_norm``; the noise multiplier is calibrated with the RDP
accountant of ``dp_accounting`` for the number of steps taken (Opacus's own accountant is not
used for the reported figure).

Example (German-Credit-sized synthetic data):
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(600, 5)); y = (X[:, 0] + 0.5 * rng.normal(size=600) > 0).astype(int)
    >>> m = DPLogisticRegression(epsilon=3.0, random_state=0).fit(X, y)
    >>> round(m.privacy_.epsilon, 2), m.privacy_.delta, float(m.score(X, y)) > 0.75
    (3.0, 1e-05, True)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize
from scipy.special import expit, log_expit
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, check_X_y

from finmlsec.defences._params import Float, Int, OneOf
from finmlsec.defences.base import DEFENCES, Defence
from finmlsec.errors import CapabilityError, DataError
from finmlsec.extras import require

RDP = "dp_accounting.rdp.rdp_privacy_accountant"


@dataclass(frozen=True)
class DPReport:
    """The privacy guarantee of a DP training, from the RDP accountant of dp-accounting."""

    mechanism: str
    epsilon: float  # the guarantee at ``delta`` (replace-one adjacency)
    delta: float
    noise_multiplier: float  # noise standard deviation / sensitivity
    sensitivity: float  # L2 sensitivity of one release (output perturbation) or the clip norm
    releases: int  # Gaussian releases composed (classes one-vs-rest, or DP-SGD steps)
    sample_rate: float = 1.0  # Poisson sampling rate of each release (DP-SGD)
    extra_l2: float = 0.0  # regularisation added for the guarantee (objective perturbation)


def _dp() -> Any:
    return require("dp_accounting", "differential-privacy accounting")


@functools.cache
def _orders() -> tuple[float, ...]:
    """dp-accounting's default Renyi orders from 2 up: the fractional orders below 2 fail to
    converge for a subsampled Gaussian (a warning each); leaving orders out only makes the
    epsilon reported larger (conservative)."""
    rdp = require(RDP, "differential-privacy accounting")
    return tuple(float(o) for o in rdp.DEFAULT_RDP_ORDERS if o >= 2)


@functools.lru_cache(maxsize=256)
def gaussian_epsilon(noise_multiplier: float, releases: int, delta: float,
                     sample_rate: float = 1.0) -> float:
    """Epsilon at ``delta`` of ``releases`` Gaussian mechanisms of ``noise_multiplier`` (each on a
    Poisson subsample at ``sample_rate``), by the RDP accountant.

    Example:
        >>> round(gaussian_epsilon(1.0, 1, 1e-5), 2)
        4.73
    """
    dp = _dp()
    rdp = require(RDP, "differential-privacy accounting")
    event: Any = dp.GaussianDpEvent(noise_multiplier)
    if sample_rate < 1.0:
        event = dp.PoissonSampledDpEvent(sample_rate, event)
    acc = rdp.RdpAccountant(list(_orders()))
    acc.compose(dp.SelfComposedDpEvent(event, releases))
    return float(acc.get_epsilon(delta))


def calibrate_noise(epsilon: float, delta: float, releases: int,
                    sample_rate: float = 1.0) -> float:
    """The smallest noise multiplier (to 0.1%) whose composition gives at most ``epsilon``."""
    lo, hi = 0.05, 1.0
    while gaussian_epsilon(hi, releases, delta, sample_rate) > epsilon:
        lo, hi = hi, hi * 2
        if hi > 1e5:
            raise DataError(f"epsilon {epsilon} at delta {delta} is out of reach")
    while hi - lo > 1e-3 * hi:
        mid = (lo + hi) / 2
        if gaussian_epsilon(mid, releases, delta, sample_rate) > epsilon:
            lo = mid
        else:
            hi = mid
    return hi


def _lr_objective(Z: np.ndarray, s: np.ndarray, lam: float,
                  b: np.ndarray | None = None) -> np.ndarray:
    """The exact minimiser (to a gradient norm of 1e-10) of
    ``lam / 2 |w|^2 + mean log(1 + exp(-s Z w)) + b.w / n``."""
    n = len(Z)
    lin = np.zeros(Z.shape[1]) if b is None else b / n

    def obj(w: np.ndarray) -> tuple[float, np.ndarray]:
        m = s * (Z @ w)
        f = lam / 2 * w @ w - log_expit(m).mean() + lin @ w
        g = lam * w - (Z.T @ (s * expit(-m))) / n + lin
        return float(f), g

    return np.asarray(minimize(obj, np.zeros(Z.shape[1]), jac=True, method="L-BFGS-B",
                               options={"gtol": 1e-10, "ftol": 0.0, "maxiter": 10_000}).x)


#: the bound on the logistic loss's second derivative (Chaudhuri et al.'s ``c``)
LOGISTIC_C = 0.25


def objective_noise(epsilon: float, n: int, l2: float,
                    c: float = LOGISTIC_C) -> tuple[float, float]:
    """Chaudhuri, Monteleoni and Sarwate (2011), Algorithm 2: the privacy budget ``epsilon'``
    left for the random linear term (its norm is Gamma(d, 2 / epsilon')) and the extra
    regularisation ``Delta``, for an ``epsilon``-DP release from ``n`` records at L2
    regularisation ``l2`` (objective ``l2 / 2 |w|^2 + mean loss``).

    Example:
        >>> e, extra = objective_noise(3.0, 500, 0.03)
        >>> round(e, 3), extra
        (2.967, 0.0)
        >>> e, extra = objective_noise(0.1, 500, 0.001)  # too little regularisation: Delta > 0
        >>> round(e, 3), round(extra, 5)
        (0.05, 0.01875)
    """
    slack = math.log(1 + 2 * c / (n * l2) + c * c / (n * l2) ** 2)
    if epsilon - slack > 0:
        return epsilon - slack, 0.0
    return epsilon / 2, c / (n * math.expm1(epsilon / 4)) - l2


class _PrivateLR(ClassifierMixin, BaseEstimator):
    """The DP logistic regression on numeric features (see the module docstring)."""

    def __init__(self, epsilon: float = 3.0, delta: float = 1e-5, l2: float = 0.03,
                 clip_norm: float = 1.0, method: str = "output",
                 random_state: int | None = None) -> None:
        self.epsilon = epsilon
        self.delta = delta
        self.l2 = l2
        self.clip_norm = clip_norm
        self.method = method
        self.random_state = random_state

    def _features(self, X: Any) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        c = float(self.clip_norm_)
        norm = np.linalg.norm(X, axis=1, keepdims=True)
        X = X / np.maximum(1.0, norm / c) / c
        return np.hstack([X, np.ones((len(X), 1))]) / math.sqrt(2.0)

    def fit(self, X: Any, y: Any) -> _PrivateLR:
        # a bank's Pipeline one-hot encodes into a sparse matrix: the records are made dense
        # here (the clipping and the noise work on rows of numbers)
        X, y = check_X_y(X, y, accept_sparse="csr", dtype=float)
        X = X.toarray() if sp.issparse(X) else X
        check_classification_targets(y)
        self.classes_, yi = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"needs at least 2 classes in y; got {len(self.classes_)}")
        self.n_features_in_ = X.shape[1]
        self.clip_norm_ = float(self.clip_norm)
        Z = self._features(X)
        n, lam = len(Z), float(self.l2)
        k = 1 if len(self.classes_) == 2 else len(self.classes_)
        rng = np.random.default_rng(self.random_state)
        signs = [np.where(yi == (1 if k == 1 else c), 1.0, -1.0) for c in range(k)]
        if self.method == "objective":
            # pure DP: k one-vs-rest releases at epsilon / k each (basic composition)
            eps_k, extra = objective_noise(float(self.epsilon) / k, n, lam)
            W = []
            for s in signs:
                direction = rng.normal(size=Z.shape[1])
                b = np.asarray(direction / np.linalg.norm(direction)
                               * rng.gamma(Z.shape[1], 2.0 / eps_k))
                W.append(_lr_objective(Z, s, lam + extra, b))
            self.weights_ = np.array(W)
            self.privacy_ = DPReport("objective-perturbed logistic regression (pure DP)",
                                     float(self.epsilon), 0.0, 2.0 / eps_k, 1.0, k,
                                     extra_l2=extra)
            return self
        sens = 2.0 / (n * lam)
        nm = calibrate_noise(float(self.epsilon), float(self.delta), k)
        W = [_lr_objective(Z, s, lam) for s in signs]
        self.weights_ = np.array([w + rng.normal(scale=nm * sens, size=w.shape) for w in W])
        self.privacy_ = DPReport("output-perturbed logistic regression", gaussian_epsilon(
            nm, k, float(self.delta)), float(self.delta), nm, sens, k)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "weights_")
        X = check_array(X, accept_sparse="csr", dtype=float)
        d = self._features(X.toarray() if sp.issparse(X) else X) @ self.weights_.T
        return d[:, 0] if d.shape[1] == 1 else d

    def predict_proba(self, X: Any) -> np.ndarray:
        d = self.decision_function(X)
        if d.ndim == 1:
            p = expit(d)
            return np.column_stack([1 - p, p])
        e = np.exp(d - d.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


@DEFENCES.register("dp.logistic_regression")
class DPLogisticRegression(Defence):
    """(epsilon, delta)-DP logistic regression by output perturbation (``method="output"``, the
    default) or epsilon-DP by objective perturbation (``method="objective"``); see the module
    docstring.
    ``estimator``: None (the DP model on numeric features) or a ``Pipeline`` whose preprocessing
    steps are kept and whose final step is replaced by the DP model (whatever it was: a forest
    becomes a DP logistic regression). ``privacy_``: the :class:`DPReport`."""

    countermeasure: ClassVar[str] = "pate"
    counters: ClassVar[frozenset[str]] = frozenset({"infer_training_data"})
    stage: ClassVar[str] = "training"
    summary: ClassVar[str] = ("DP logistic regression (output perturbation with RDP accounting, "
                              "or objective perturbation); replaces the model's final step")
    #: after PATE and DP-SGD when a profile tries only some (it replaces the model's algorithm)
    rank: ClassVar[int] = 2
    input_kinds: ClassVar[tuple[str, ...]] = ("tabular",)
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "epsilon": [Float(0.0, closed_lo=False)], "delta": [Float(0.0, 1.0, closed_lo=False)],
        "l2": [Float(0.0, closed_lo=False)], "clip_norm": [Float(0.0, closed_lo=False)],
        "method": [OneOf(("output", "objective"))], "random_state": [Int(0), None],
    }
    _sklearn_check_deviations: ClassVar[dict[str, str]] = {
        "check_n_features_in_after_fitting": "predict does not check the number of features "
                                             "against n_features_in_ (a numpy error instead)",
        "check_fit2d_1sample": "one record is one class: its error says 'needs at least 2 "
                               "classes', not scikit-learn's wording",
    }

    def __init__(self, estimator: Any = None, *, epsilon: float = 3.0, delta: float = 1e-5,
                 l2: float = 0.03, clip_norm: float = 1.0, method: str = "output",
                 random_state: int | None = None) -> None:
        self.estimator = estimator
        self.epsilon = epsilon
        self.delta = delta
        self.l2 = l2
        self.clip_norm = clip_norm
        self.method = method
        self.random_state = random_state

    def _inner(self, X: Any = None) -> Any:
        return LogisticRegression()  # what the defended model answers like (predict_proba)

    def _fit(self, X: Any, y: Any) -> None:
        core = _PrivateLR(self.epsilon, self.delta, self.l2, self.clip_norm, self.method,
                          self.random_state)
        est = self.estimator
        # a model fed its columns in the dtypes it was trained with wraps its Pipeline (the
        # scan's model factory for a loaded pipeline): keep the wrapper, replace the final step
        inner = getattr(est, "estimator", None)
        typed = (est if not isinstance(est, Pipeline) and isinstance(inner, Pipeline)
                 and hasattr(est, "set_params") else None)
        pipe = inner if typed is not None else est
        if isinstance(pipe, Pipeline) and len(pipe.steps) > 1:
            model: Any = Pipeline(clone(pipe).steps[:-1] + [("dp_logistic_regression", core)])
            if typed is not None:
                model = clone(typed).set_params(estimator=model)
        else:
            model = core
        try:
            model.fit(X, y)
        except ValueError as exc:
            if model is core and "could not convert" in str(exc):
                raise DataError(
                    "dp.logistic_regression needs numeric records, or a model Pipeline whose "
                    f"preprocessing makes them numeric: {exc}") from None
            raise
        self._adopt(model)
        fitted = model.estimator if typed is not None else model
        last = fitted.steps[-1][1] if isinstance(fitted, Pipeline) else fitted
        self.privacy_ = last.privacy_


@DEFENCES.register("dp.sgd")
class DPSGD(Defence):
    """DP-SGD with Opacus for a torch model (see the module docstring). ``estimator``: a
    :class:`~finmlsec.targets.torch_estimator.TorchClassifier` (its architecture, epochs, batch
    size, learning rate); ``estimator_`` is it trained with DP-SGD (a white-box target like any
    TorchClassifier); ``privacy_``: the :class:`DPReport`."""

    countermeasure: ClassVar[str] = "pate"
    counters: ClassVar[frozenset[str]] = frozenset({"infer_training_data"})
    stage: ClassVar[str] = "training"
    summary: ClassVar[str] = "DP-SGD (Opacus; per-example clipping and noise, RDP accounting)"
    neural_only: ClassVar[bool] = True
    transparent: ClassVar[bool] = True
    rank: ClassVar[int] = 1  # after PATE (a scan's quick profile keeps trying PATE first)
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "epsilon": [Float(0.0, closed_lo=False)], "delta": [Float(0.0, 1.0, closed_lo=False)],
        "max_grad_norm": [Float(0.0, closed_lo=False)],
        "lr": [Float(0.0, closed_lo=False), None], "epochs": [Int(1), None],
        "batch_size": [Int(1), None],
    }
    _fast_params: ClassVar[dict[str, Any]] = {"epochs": 2}

    def __init__(self, estimator: Any = None, *, epsilon: float = 3.0, delta: float = 1e-5,
                 max_grad_norm: float = 1.0, lr: float | None = None,
                 epochs: int | None = None, batch_size: int | None = None) -> None:
        self.estimator = estimator
        self.epsilon = epsilon
        self.delta = delta
        self.max_grad_norm = max_grad_norm
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size

    def _inner(self, X: Any = None) -> Any:
        return self.estimator if self.estimator is not None else LogisticRegression()

    def _fit(self, X: Any, y: Any) -> None:
        if self.estimator is None or not hasattr(self.estimator, "get_params") or \
                "adversarial" not in self.estimator.get_params():
            raise CapabilityError("dp.sgd trains a torch model (a TorchClassifier); got "
                                  f"{type(self.estimator).__name__}")
        est = clone(self.estimator)
        over = {k: v for k, v in (("lr", self.lr), ("epochs", self.epochs),
                                  ("batch_size", self.batch_size)) if v is not None}
        est.set_params(**over)
        n = len(y)
        q = min(1.0, est.batch_size / n)
        steps = int(math.ceil(est.epochs / q))
        nm = calibrate_noise(float(self.epsilon), float(self.delta), steps, q)
        est.set_params(private={"noise_multiplier": nm, "max_grad_norm": self.max_grad_norm,
                                "sample_rate": q, "steps": steps})
        est.fit(X, y)
        self._adopt(est)
        self.privacy_ = DPReport("DP-SGD", gaussian_epsilon(nm, steps, float(self.delta), q),
                                 float(self.delta), nm, float(self.max_grad_norm), steps, q)
