"""Modify confidence values: what the model operator returns, made less useful to an attacker.

Each class is a scikit-learn meta-estimator around a probabilistic classifier. ``fit`` fits a
clone of ``estimator`` (or, with ``prefit=True``, adopts an already fitted one, as the gateway
does); ``predict_proba`` returns the modified confidences; ``predict`` returns the wrapped model's
own decision, so none of these defences changes a decision.

Ties. Rounding, truncation and top-k can make several classes' confidences equal (0.504 / 0.496
become 0.50 / 0.50 at two decimals). ``predict`` still returns the wrapped model's class, which is
always one of the tied maxima but not necessarily the first column, so on tied rows
``predict(X)`` may differ from ``np.argmax(predict_proba(X), axis=1)`` (which picks the first). This is deliberate: a credit
decision must not flip because its displayed confidence was rounded. It is a declared deviation
from the consistency scikit-learn's ``check_classifiers_train`` asserts, declared in
:data:`SKLEARN_CHECK_DEVIATIONS`; it shows only when the check's data produce ties (one decimal
does, two do not), and every other check passes unmodified.

Every output is a probability distribution (rows sum to one) in which the wrapped model's top
class keeps the largest value.

Example:
    >>> import numpy as np
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from finmlsec.defences.confidence import RoundConfidence, LabelOnly
    >>> X, y = load_iris(return_X_y=True)
    >>> model = RoundConfidence(LogisticRegression(max_iter=500), decimals=1).fit(X, y)
    >>> model.predict_proba(X[:1]).tolist()
    [[1.0, 0.0, 0.0]]
    >>> LabelOnly(LogisticRegression(max_iter=500)).fit(X, y).predict_proba(X[50:51]).tolist()
    [[0.0, 1.0, 0.0]]
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression  # noqa: F401 - used by the examples
from sklearn.utils.validation import check_is_fitted

from finmlsec.defences._params import Bool, Float, Int, OneOf
from finmlsec.defences.base import DEFENCES, Defence
from finmlsec.errors import CapabilityError

#: scikit-learn estimator checks an output defence may fail when its output ties, and why.
SKLEARN_CHECK_DEVIATIONS: dict[str, str] = {
    "check_classifiers_train": (
        "on rows where the modified confidences tie, predict returns the wrapped model's own "
        "decision, not the first tied column that np.argmax(predict_proba) picks"
    ),
}

class _OutputDefence(Defence):
    """Shared machinery: fit or adopt the wrapped model, then modify its probabilities."""

    countermeasure: ClassVar[str] = "modify_confidence"
    counters: ClassVar[frozenset[str]] = frozenset({"infer_model", "infer_training_data"})
    stage: ClassVar[str] = "output"
    summary: ClassVar[str] = ""
    #: order among the defences of the countermeasure (lower is tried first): the paper's own
    #: example (rounding confidence values) first, then the stronger or more general ones
    rank: ClassVar[int] = 0
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {"prefit": [Bool()]}

    prefit: bool

    def _fit(self, X: Any, y: Any, **fit_params: Any) -> None:
        """Fit a clone of ``estimator`` on ``(X, y)``; with ``prefit=True`` adopt it as is."""
        est = self._inner()
        if self.prefit:
            check_is_fitted(est)
            fitted = est
        else:
            fitted = clone(est).fit(X, y, **fit_params)
        if not hasattr(fitted, "predict_proba"):
            raise CapabilityError(
                f"{type(self).__name__} modifies confidence values, but "
                f"{type(fitted).__name__} has no predict_proba; wrap a probabilistic classifier"
            )
        self._adopt(fitted)
        self._fitted_extra()

    def _fitted_extra(self) -> None:
        """Hook for state drawn at fit time (noise keys)."""

    def predict_proba(self, X: Any) -> np.ndarray:
        """The wrapped model's probabilities, modified by this defence."""
        check_is_fitted(self, "estimator_")
        p = np.asarray(self.estimator_.predict_proba(X), dtype=float)
        top = np.argmax(p, axis=1)
        return self._modify(p, top, X)

    def _modify(self, p: np.ndarray, top: np.ndarray, X: Any) -> np.ndarray:
        raise NotImplementedError


def _keep_top(q: np.ndarray, top: np.ndarray) -> np.ndarray:
    """Swap values so that column ``top`` holds each row's maximum (sum and multiset kept)."""
    rows = np.arange(len(q))
    cur = np.argmax(q, axis=1)
    hi = q[rows, cur].copy()
    lo = q[rows, top].copy()
    q[rows, cur] = lo
    q[rows, top] = hi
    return q


def round_to_grid(p: np.ndarray, decimals: int) -> np.ndarray:
    """Round each row to multiples of 10**-decimals so that it still sums to one (largest
    remainder): every value moves to the grid point just below or just above it.

    >>> round_to_grid(np.array([[1/3, 1/3, 1/3], [0.504, 0.496, 0.0]]), 2).tolist()
    [[0.34, 0.33, 0.33], [0.5, 0.5, 0.0]]
    """
    scale = 10.0**decimals
    units = np.clip(p, 0.0, 1.0) * scale
    floor = np.floor(units + 1e-9)
    short = np.clip(np.rint(scale - floor.sum(axis=1)), 0, p.shape[1]).astype(int)
    order = np.argsort(-(units - floor), axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(p.shape[1])[None, :].repeat(len(p), 0), axis=1)
    return (floor + (ranks < short[:, None])) / scale


@DEFENCES.register("confidence.round")
class RoundConfidence(_OutputDefence):
    """Confidences rounded to ``decimals`` places (sum-preserving; see :func:`round_to_grid`).

    Tramer et al. (2016): two or three decimals weaken equation-solving extraction, but
    learning-based extraction and membership inference largely survive.

    Example:
        >>> from sklearn.datasets import load_breast_cancer
        >>> X, y = load_breast_cancer(return_X_y=True)
        >>> from sklearn.tree import DecisionTreeClassifier
        >>> m = RoundConfidence(DecisionTreeClassifier(max_depth=2, random_state=0), decimals=1)
        >>> sorted({tuple(r) for r in m.fit(X, y).predict_proba(X).tolist()})
        [(0.0, 1.0), (0.5, 0.5), (0.6, 0.4), (1.0, 0.0)]
        >>> tied = (m.predict_proba(X)[:, 0] == 0.5)  # a leaf with 0.47 / 0.53 ties at 0.5 / 0.5
        >>> sorted(set(m.predict(X[tied]).tolist()))  # predict keeps the model's decision
        [1]
    """

    summary = "round confidence values to k decimals"
    rank = 0
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **_OutputDefence._parameter_constraints, "decimals": [Int(0, 15)]}

    def __init__(self, estimator: Any = None, *, decimals: int = 2, prefit: bool = False) -> None:
        self.estimator = estimator
        self.decimals = decimals
        self.prefit = prefit

    def _modify(self, p: np.ndarray, top: np.ndarray, X: Any) -> np.ndarray:
        return _keep_top(round_to_grid(p, self.decimals), top)


@DEFENCES.register("confidence.truncate")
class TruncateConfidence(_OutputDefence):
    """Confidences cut (floored) to ``decimals`` places; the mass cut off goes to the top class,
    so the output is a distribution whose maximum is never understated.

    Example:
        >>> from sklearn.datasets import load_iris
        >>> X, y = load_iris(return_X_y=True)
        >>> m = TruncateConfidence(LogisticRegression(max_iter=500), decimals=1).fit(X, y)
        >>> m.predict_proba(X[70:71]).round(6).tolist()  # model: 0.0023, 0.4411, 0.5567
        [[0.0, 0.4, 0.6]]
    """

    summary = "truncate confidence values to k decimals"
    rank = 5
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **_OutputDefence._parameter_constraints, "decimals": [Int(0, 15)]}

    def __init__(self, estimator: Any = None, *, decimals: int = 2, prefit: bool = False) -> None:
        self.estimator = estimator
        self.decimals = decimals
        self.prefit = prefit

    def _modify(self, p: np.ndarray, top: np.ndarray, X: Any) -> np.ndarray:
        scale = 10.0**self.decimals
        q = np.floor(np.clip(p, 0.0, 1.0) * scale + 1e-9) / scale
        q[np.arange(len(q)), top] += 1.0 - q.sum(axis=1)
        return q


@DEFENCES.register("confidence.top_k")
class TopKConfidence(_OutputDefence):
    """Only the ``k`` largest confidences are disclosed; the remaining mass is spread evenly over
    the other classes (which reveals nothing beyond the top-k values themselves).

    Example:
        >>> from sklearn.datasets import load_iris
        >>> X, y = load_iris(return_X_y=True)
        >>> m = TopKConfidence(LogisticRegression(max_iter=500), k=1).fit(X, y)
        >>> p = m.predict_proba(X[60:61])[0]
        >>> bool(p[0] == p[2]), bool(p.argmax() == m.predict(X[60:61])[0])
        (True, True)
    """

    summary = "disclose only the top-k confidence values"
    rank = 2
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **_OutputDefence._parameter_constraints, "k": [Int(1)]}

    def __init__(self, estimator: Any = None, *, k: int = 1, prefit: bool = False) -> None:
        self.estimator = estimator
        self.k = k
        self.prefit = prefit

    def _modify(self, p: np.ndarray, top: np.ndarray, X: Any) -> np.ndarray:
        n_classes = p.shape[1]
        if self.k >= n_classes:
            return p
        order = np.argsort(-p, axis=1, kind="stable")
        keep = np.zeros_like(p, dtype=bool)
        np.put_along_axis(keep, order[:, : self.k], True, axis=1)
        rest = (1.0 - np.where(keep, p, 0.0).sum(axis=1)) / (n_classes - self.k)
        q = np.where(keep, p, np.clip(rest, 0.0, None)[:, None])
        return _keep_top(q, top)


@DEFENCES.register("confidence.label_only")
class LabelOnly(_OutputDefence):
    """Only the decision is disclosed: ``predict_proba`` is the one-hot vector of ``predict``.

    Example:
        >>> from sklearn.datasets import load_iris
        >>> X, y = load_iris(return_X_y=True)
        >>> LabelOnly(LogisticRegression(max_iter=500)).fit(X, y).predict_proba(X[100:101]).tolist()
        [[0.0, 0.0, 1.0]]
    """

    summary = "return the label only, no confidence values"
    rank = 1

    def __init__(self, estimator: Any = None, *, prefit: bool = False) -> None:
        self.estimator = estimator
        self.prefit = prefit

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "estimator_")
        label = self.predict(X)
        idx = np.searchsorted(self.classes_, label)
        q = np.zeros((len(label), len(self.classes_)))
        q[np.arange(len(label)), idx] = 1.0
        return q


def _row_keys(X: Any) -> np.ndarray:
    """One 64-bit hash per record, so that the same record always gets the same noise."""
    if sp.issparse(X):
        X = X.toarray()
    if isinstance(X, pd.DataFrame):
        return pd.util.hash_pandas_object(X, index=False).to_numpy(dtype=np.uint64)
    if isinstance(X, list | tuple) and X and isinstance(X[0], str):
        return pd.util.hash_array(np.asarray(X, dtype=object))
    arr = np.asarray(X)
    flat = pd.DataFrame(arr.reshape(len(arr), -1))
    return pd.util.hash_pandas_object(flat, index=False).to_numpy(dtype=np.uint64)


def _keyed_uniform(keys: np.ndarray, secret: int, n_cols: int, stream: int) -> np.ndarray:
    """Uniform numbers in (0, 1) determined by (record key, secret, column, stream)."""
    cols = np.arange(n_cols, dtype=np.uint64)[None, :]
    with np.errstate(over="ignore"):
        mixed = (keys[:, None] ^ np.uint64(secret)) + cols * np.uint64(0x9E3779B97F4A7C15) + (
            np.uint64(stream) * np.uint64(0xD1B54A32D192ED03)
        )
    h = pd.util.hash_array(mixed.ravel()).reshape(mixed.shape)
    return ((h >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


@DEFENCES.register("confidence.noise")
class NoisyConfidence(_OutputDefence):
    """Calibrated random noise added to the confidences, keyed to the record.

    Each confidence gets Laplace (or Gaussian) noise of the given ``scale``; negative values are
    clipped, rows renormalised, and the top class kept on top. The noise is a deterministic
    function of the record and of a secret drawn at fit time from ``random_state``, so asking
    the same question again returns the same answer: averaging repeated queries does not remove
    it.

    Example:
        >>> from sklearn.datasets import load_iris
        >>> X, y = load_iris(return_X_y=True)
        >>> m = NoisyConfidence(LogisticRegression(max_iter=500), scale=0.05, random_state=0)
        >>> m = m.fit(X, y)
        >>> a, b = m.predict_proba(X[:3]), m.predict_proba(X[:3])
        >>> bool((a == b).all()), bool((a.argmax(1) == m.predict(X[:3])).all())
        (True, True)
    """

    summary = "add calibrated noise to confidence values"
    rank = 3
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **_OutputDefence._parameter_constraints,
        "scale": [Float(0.0)], "mechanism": [OneOf(("laplace", "gaussian"))],
        "random_state": [Int(0), None]}

    def __init__(self, estimator: Any = None, *, scale: float = 0.05,
                 mechanism: str = "laplace", random_state: int | None = None,
                 prefit: bool = False) -> None:
        self.estimator = estimator
        self.scale = scale
        self.mechanism = mechanism
        self.random_state = random_state
        self.prefit = prefit

    def _fitted_extra(self) -> None:
        self.secret_ = int(np.random.default_rng(self.random_state).integers(0, 2**63 - 1))

    def _modify(self, p: np.ndarray, top: np.ndarray, X: Any) -> np.ndarray:
        keys = _row_keys(X)
        u = _keyed_uniform(keys, self.secret_, p.shape[1], 0)
        if self.mechanism == "laplace":
            noise = -self.scale * np.sign(u - 0.5) * np.log1p(-2.0 * np.abs(u - 0.5))
        else:
            v = _keyed_uniform(keys, self.secret_, p.shape[1], 1)
            noise = self.scale * np.sqrt(-2.0 * np.log(u)) * np.cos(2.0 * np.pi * v)
        q = np.clip(p + noise, 0.0, None)
        total = q.sum(axis=1)
        empty = total <= 0
        q[empty, :] = 0.0
        q[np.flatnonzero(empty), top[empty]] = 1.0
        q /= q.sum(axis=1, keepdims=True)
        return _keep_top(q, top)


@DEFENCES.register("confidence.reverse_sigmoid")
class ReverseSigmoid(_OutputDefence):
    """The reverse-sigmoid perturbation of Lee et al. (2019): ``q = p - beta * (sigmoid(gamma *
    logit(p)) - 1/2)``, clipped, renormalised, top class kept. It flattens confidences in a way
    that is hard to invert, poisoning the gradients a learning-based thief relies on.

    Example:
        >>> from sklearn.datasets import load_iris
        >>> X, y = load_iris(return_X_y=True)
        >>> m = ReverseSigmoid(LogisticRegression(max_iter=500), beta=0.5).fit(X, y)
        >>> p, q = m.estimator_.predict_proba(X[:1]), m.predict_proba(X[:1])
        >>> bool(q.max() < p.max()), bool(q.argmax() == p.argmax())
        (True, True)
    """

    summary = "reverse-sigmoid perturbation of confidence values (Lee et al. 2019)"
    rank = 4
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **_OutputDefence._parameter_constraints,
        "beta": [Float(0.0)], "gamma": [Float(0.0, closed_lo=False)]}

    def __init__(self, estimator: Any = None, *, beta: float = 0.5, gamma: float = 0.5,
                 prefit: bool = False) -> None:
        self.estimator = estimator
        self.beta = beta
        self.gamma = gamma
        self.prefit = prefit

    def _modify(self, p: np.ndarray, top: np.ndarray, X: Any) -> np.ndarray:
        pc = np.clip(p, 1e-12, 1 - 1e-12)
        logit = np.log(pc) - np.log1p(-pc)
        r = self.beta * (1.0 / (1.0 + np.exp(-self.gamma * logit)) - 0.5)
        q = np.clip(p - r, 1e-12, None)
        q /= q.sum(axis=1, keepdims=True)
        return _keep_top(q, top)
