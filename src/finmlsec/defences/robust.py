"""Robust learning algorithms: trimmed loss (TRIM) and bagging against poisoned training data.

:class:`TrimmedLossClassifier` fits its estimator on the ``1 - trim`` share of the training records
with the lowest loss, re-selecting and refitting until the selection is stable: the TRIM
algorithm of Jagielski et al. (2018), written for any classifier with ``predict_proba`` (loss =
negative log-likelihood of the given label). :class:`RobustBagging` is bagging on small
subsamples (Biggio et al. 2011): a poisoned record reaches only a minority of the voters.

Example:
    >>> import numpy as np
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> idx = np.random.default_rng(0).choice(len(y), 60, replace=False)
    >>> flipped = y.copy(); flipped[idx] = 1 - flipped[idx]
    >>> lr = make_pipeline(StandardScaler(), LogisticRegression())
    >>> m = TrimmedLossClassifier(lr, trim=0.12).fit(X, flipped)
    >>> round(float(np.mean(~m.kept_[idx])), 2)  # share of the flipped records trimmed
    0.88
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils import get_tags
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _num_samples,
    check_consistent_length,
    check_is_fitted,
    column_or_1d,
    validate_data,
)

from finmlsec.arrays import take_rows
from finmlsec.defences._params import Float, Int, check_float, check_int
from finmlsec.defences.base import DEFENCES, Defence, with_inner_input_tags
from finmlsec.errors import CapabilityError
from finmlsec.tasks import task_map

_POISONING = frozenset({"generate_malicious_model"})


def label_loss(model: Any, X: Any, y: np.ndarray) -> np.ndarray:
    """Per-record negative log-likelihood of the given label under a fitted classifier."""
    if not hasattr(model, "predict_proba"):
        raise CapabilityError(
            f"trimmed loss needs predict_proba to measure each record's loss, but "
            f"{type(model).__name__} has none; use a probabilistic classifier"
        )
    p = np.asarray(model.predict_proba(X), dtype=float)
    classes = list(model.classes_)
    pos = {c: i for i, c in enumerate(classes)}
    idx = np.array([pos.get(v, -1) for v in np.asarray(y).tolist()])
    py = np.where(idx >= 0, p[np.arange(len(p)), np.clip(idx, 0, None)], 0.0)
    return -np.log(np.clip(py, 1e-12, 1.0))


def trim_fit(estimator: Any, X: Any, y: np.ndarray, n_keep: int,
             max_iter: int = 10) -> tuple[Any, np.ndarray, int]:
    """TRIM: returns (fitted model, boolean mask of kept records, iterations used)."""
    n = len(y)
    keep = np.ones(n, dtype=bool)
    model = clone(estimator).fit(X, y)
    it = 0
    for it in range(1, max_iter + 1):
        loss = label_loss(model, X, y)
        new = np.zeros(n, dtype=bool)
        new[np.argsort(loss, kind="stable")[:n_keep]] = True
        yk = y[new]
        if len(np.unique(yk)) < len(np.unique(y)):  # never trim a class away
            break
        if it > 1 and np.array_equal(new, keep):
            break
        keep = new
        model = clone(estimator).fit(take_rows(X, np.flatnonzero(keep)), y[keep])
    return model, keep, it


@DEFENCES.register("robust.trimmed_loss")
class TrimmedLossClassifier(Defence):
    """A classifier fitted by TRIM: on the ``1 - trim`` share of records with the lowest loss.

    ``trim`` should be at least the share of poisoned records one wants to survive. After fit,
    ``kept_`` marks the records the final model was trained on and ``n_iter_`` the rounds.
    """

    countermeasure: ClassVar[str] = "robust_algorithm"
    counters: ClassVar[frozenset[str]] = _POISONING
    stage: ClassVar[str] = "training"
    summary: ClassVar[str] = "trimmed-loss training (TRIM, Jagielski et al. 2018)"
    transparent: ClassVar[bool] = True
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "trim": [Float(0.0, 0.5)], "max_iter": [Int(1)]}

    def __init__(self, estimator: Any = None, *, trim: float = 0.1, max_iter: int = 10) -> None:
        self.estimator = estimator
        self.trim = trim
        self.max_iter = max_iter

    def fit_cost(self) -> float:
        """The first fit and a refit each round, at most."""
        return float(self.max_iter + 1)

    def _fit(self, X: Any, y: Any) -> None:
        name = type(self).__name__
        if y is None:
            raise ValueError(f"{name} requires y to be passed, but the target y is None")
        if not (hasattr(X, "iloc") or sp.issparse(X) or isinstance(X, np.ndarray)):
            X = np.asarray(X)
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            import warnings

            from sklearn.exceptions import DataConversionWarning

            warnings.warn("A column-vector y was passed when a 1d array was expected",
                          DataConversionWarning, stacklevel=2)
            y = y.ravel()
        check_classification_targets(y)
        if sp.issparse(X):
            X = sp.csr_matrix(X)
        n_keep = max(int(np.ceil((1.0 - self.trim) * len(y))), 1)
        fitted, self.kept_, self.n_iter_ = trim_fit(self._inner(), X, y, n_keep, self.max_iter)
        self._adopt(fitted)


def _fit_voter(shared: tuple[Any, Any, np.ndarray], member: tuple[int, np.ndarray]) -> Any:
    """One voter of :class:`SubsampleVote`: a clone of the estimator, its unset random states
    set to the voter's seed, fitted on the voter's subsample."""
    estimator, X, y = shared
    seed, idx = member
    est = clone(estimator)
    est.set_params(**{p: seed for p, v in est.get_params(deep=True).items()
                      if (p == "random_state" or p.endswith("__random_state")) and v is None})
    return est.fit(take_rows(X, idx), y[idx])


class SubsampleVote(ClassifierMixin, MetaEstimatorMixin, BaseEstimator):
    """Bagging that indexes rows with ``_safe_indexing``, so each voter gets the input as given
    (a pandas DataFrame stays one, for column transformers selecting columns by name): each voter
    is fitted on ``max_samples`` of the records drawn without replacement (as
    ``BaggingClassifier``'s default), with one record of another class added when the draw has a
    single class. A DataFrame and the ndarray of its values give the same voters.
    ``predict_proba`` averages the voters' probabilities over the classes seen in fit.
    ``estimator`` defaults to a decision tree. A numpy array is
    checked the scikit-learn way (its accepted input, sparse and missing values, is the
    estimator's); a DataFrame is handed to the voters unchanged, after the check of its column
    names and count (``feature_names_in_``, ``n_features_in_``).

    Example:
        >>> import pandas as pd
        >>> from sklearn.tree import DecisionTreeClassifier
        >>> X = pd.DataFrame({"a": range(40)}); y = (X.a > 19).astype(int).to_numpy()
        >>> m = SubsampleVote(DecisionTreeClassifier(), n_estimators=3, random_state=0).fit(X, y)
        >>> m.predict(pd.DataFrame({"a": [0, 39]})).tolist()
        [0, 1]
    """

    def __init__(self, estimator: Any = None, *, n_estimators: int = 10,
                 max_samples: float = 0.3, random_state: int | None = None) -> None:
        self.estimator = estimator
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.random_state = random_state

    def _inner(self) -> Any:
        return self.estimator if self.estimator is not None else DecisionTreeClassifier()

    def _check_X(self, X: Any, *, reset: bool) -> Any:
        if hasattr(X, "iloc"):
            validate_data(self, X, skip_check_array=True, reset=reset)
            if X.shape[0] < 1:
                raise ValueError(f"Found array with 0 sample(s) (shape={X.shape}) while a minimum "
                                 f"of 1 is required by {type(self).__name__}.")
            return X
        tags = get_tags(self)
        return validate_data(self, X, reset=reset,
                             accept_sparse="csr" if tags.input_tags.sparse else False,
                             ensure_all_finite="allow-nan" if tags.input_tags.allow_nan else True,
                             dtype=None if tags.input_tags.string else "numeric")

    def fit(self, X: Any, y: Any) -> SubsampleVote:
        name = type(self).__name__
        check_int(name, "n_estimators", self.n_estimators, 1, None)
        check_float(name, "max_samples", self.max_samples, 0.0, 1.0, closed_lo=False)
        if y is None:
            raise ValueError(f"{name} requires y to be passed, but the target y is None")
        X = self._check_X(X, reset=True)
        y = column_or_1d(y, warn=True)
        check_consistent_length(X, y)
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        rng = np.random.default_rng(self.random_state)
        # seeds for the voters' own randomness (where their random_state is None), drawn apart
        # from the subsamples so that a fixed random_state gives the same fit every time
        seeds = np.random.default_rng(None if self.random_state is None else
                                      [self.random_state, 1]).integers(2**31 - 1,
                                                                        size=self.n_estimators)
        n = len(y)
        k = min(max(int(round(self.max_samples * n)), 2), n)
        members = []
        for seed in seeds:
            idx = rng.choice(n, size=k, replace=False)
            other = np.flatnonzero(y != y[idx[0]])
            if len(np.unique(y[idx])) < 2 and len(other):  # a voter needs two classes
                idx = np.concatenate([idx, [int(other[0])]])
            members.append((int(seed), idx))
        # the voters are independent: tasks of their own where the executor spreads them
        self.estimators_: list[Any] = task_map(_fit_voter, members, (self._inner(), X, y))
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "estimators_")
        X = self._check_X(X, reset=False)
        pos = {c: i for i, c in enumerate(self.classes_.tolist())}
        out = np.zeros((_num_samples(X), len(self.classes_)))
        for est in self.estimators_:
            cols = [pos[c] for c in np.asarray(est.classes_).tolist()]
            if hasattr(est, "predict_proba"):
                p = np.asarray(est.predict_proba(X), dtype=float)
            else:  # hard vote
                lab = np.asarray(est.predict(X))
                p = (lab[:, None] == np.asarray(est.classes_)[None, :]).astype(float)
            out[:, cols] += p
        return out / len(self.estimators_)

    def predict(self, X: Any) -> np.ndarray:
        p = self.predict_proba(X)
        return np.asarray(self.classes_[np.argmax(p, axis=1)])

    def __sklearn_tags__(self) -> Any:
        return with_inner_input_tags(super().__sklearn_tags__(), self._inner())


@DEFENCES.register("robust.bagging")
class RobustBagging(Defence):
    """Bagging on small subsamples (Biggio et al. 2011): ``fit`` fits a :class:`SubsampleVote`
    of ``estimator`` (``estimator_``) whose voters each see ``max_samples`` of the data, so a few
    poisoned records sway only a minority of them. For a pipeline, the preprocessing is fitted
    once (on the full data, as given: a DataFrame stays one) and only the last step is bagged, on
    the transformed matrix. One sampler for every input: an ndarray, a DataFrame of the same
    values and any array-like give the same model.

    Example:
        >>> from sklearn.datasets import load_breast_cancer
        >>> from sklearn.tree import DecisionTreeClassifier
        >>> X, y = load_breast_cancer(return_X_y=True)
        >>> bag = RobustBagging(DecisionTreeClassifier(random_state=0), n_estimators=5,
        ...                     random_state=0).fit(X, y)
        >>> type(bag.estimator_).__name__, len(bag.estimator_.estimators_)
        ('SubsampleVote', 5)
    """

    countermeasure: ClassVar[str] = "robust_algorithm"
    counters: ClassVar[frozenset[str]] = _POISONING
    stage: ClassVar[str] = "training"
    summary: ClassVar[str] = "bagging on small subsamples (Biggio et al. 2011)"
    transparent: ClassVar[bool] = True
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "n_estimators": [Int(1)], "max_samples": [Float(0.0, 1.0, closed_lo=False)],
        "random_state": [Int(0), None]}

    def __init__(self, estimator: Any = None, *, n_estimators: int = 15,
                 max_samples: float = 0.3, random_state: int | None = None) -> None:
        self.estimator = estimator
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.random_state = random_state

    def _default_estimator(self, X: Any = None) -> Any:
        return DecisionTreeClassifier()

    def fit_cost(self) -> float:
        """One fit a voter (each on ``max_samples`` of the data: a tree ensemble's fixed cost
        per tree makes it nearly a whole fit on small data)."""
        return float(self.n_estimators)

    def _fit(self, X: Any, y: Any) -> None:
        self._adopt(self._bagged(self._inner(), X, y))

    def _bagged(self, estimator: Any, X: Any, y: Any) -> Any:
        if isinstance(estimator, Pipeline) and len(estimator.steps) > 1:
            # fit the preprocessing once, on the data as given; bag the learner on its output
            steps = list(clone(estimator).steps)
            last_name, last = steps[-1]
            pre = Pipeline(steps[:-1]).fit(X, y)
            learner = self._bagged(last, pre.transform(X), y)
            return Pipeline([*pre.steps, (last_name, learner)])
        return SubsampleVote(estimator, n_estimators=self.n_estimators,
                             max_samples=self.max_samples,
                             random_state=self.random_state).fit(X, y)
