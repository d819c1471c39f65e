"""The bank's decision threshold (``model.decision_threshold``): its decisions from its scores.

A bank scores applicants and decides against one when the score of the unfavourable class (the
schema's ``positive_class``: ``bad``, ``reject``, ``fraud``) reaches its cut-off, not at 0.5, the
threshold a probabilistic classifier's own ``predict`` uses. On 95/5 data a model's ``predict``
at 0.5 often approves everyone, so every decision-based figure of a scan would be measured on
decisions the bank never takes. With a :class:`Cutoff`, a record is decided *positive* when
``predict_proba[:, index] >= threshold`` and the other class otherwise (two-class models only);
the probabilities themselves are unchanged.

The cut-off is applied in one place per kind of model:

- :class:`CutoffTarget`: the loaded (deployed) model; every attack, utility figure and the
  gateway read its ``predict``;
- :class:`Thresholded`: a scikit-learn estimator (cloned, refitted: models "like the deployed
  one" that reference, shadow, poisoned and defended models are built from).

Example:
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0, 0, 0, 1])
    >>> model = Thresholded(LogisticRegression(), threshold=0.2, index=1).fit(X, y)
    >>> p = model.predict_proba(X)[:, 1]
    >>> bool(np.all(model.predict(X) == (p >= 0.2).astype(int)))
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from finmlsec.errors import TargetError
from finmlsec.schema import InputKind


@dataclass(frozen=True)
class Cutoff:
    """Decide class ``index`` (of two) where its probability is at least ``threshold``."""

    threshold: float
    index: int

    def decide(self, proba: Any) -> np.ndarray:
        """Class positions (0 or 1) of the decisions on the rows of a two-column ``proba``."""
        P = np.asarray(proba, dtype=float)
        hit = P[:, self.index] >= self.threshold
        return np.where(hit, self.index, 1 - self.index)

    def words(self, classes: Any) -> str:
        """``'bad' when P(bad) >= 0.1`` for the report and error messages."""
        name = np.asarray(classes).tolist()[self.index]
        return f"{name!r} when P({name}) >= {self.threshold:g}"


def positive_position(classes: Any, positive: Any = None, favourable: Any = None) -> int:
    """The position among two ``classes`` of the class the cut-off is applied to: the schema's
    ``positive`` class, else the class that is not ``favourable``, else the second class (as
    scikit-learn's ``predict_proba[:, 1]``)."""
    names = [str(c) for c in np.asarray(classes).tolist()]
    if positive is not None and str(positive) in names:
        return names.index(str(positive))
    if favourable is not None and str(favourable) in names:
        return 1 - names.index(str(favourable))
    return 1


def check_two_classes(classes: Any, threshold: float, where: str = "model.decision_threshold"
                      ) -> None:
    """A cut-off needs exactly two classes (one score decides between them)."""
    names = np.asarray(classes).tolist()
    if len(names) != 2:
        raise TargetError(
            f"{where}: {threshold:g} needs a two-class model, but the model has {len(names)} "
            f"classes {names}; remove decision_threshold (a multi-class model decides by its "
            "highest probability)")


class Thresholded(ClassifierMixin, BaseEstimator):
    """``estimator`` deciding class ``index`` where its probability is at least ``threshold``
    (see the module). A clone is an unfitted estimator that keeps the cut-off; ``fit`` fits a
    clone of ``estimator``. Where the fitted model does not give two probability columns (a model
    trained on one class), its own ``predict`` stands."""

    def __init__(self, estimator: Any = None, threshold: float = 0.5, index: int = 1) -> None:
        self.estimator = estimator
        self.threshold = threshold
        self.index = index

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self.estimator, "classes_")

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.estimator.classes_)

    @property
    def estimator_(self) -> Any:
        """The fitted model (what a walk through nested defences continues with)."""
        if not self.__sklearn_is_fitted__():
            raise AttributeError("estimator_")
        return self.estimator

    def fit(self, X: Any, y: Any, sample_weight: Any = None, **kw: Any) -> Thresholded:
        est = clone(self.estimator)
        if sample_weight is not None:
            steps = getattr(est, "steps", None)
            kw[f"{steps[-1][0]}__sample_weight" if steps else "sample_weight"] = sample_weight
        self.estimator = est.fit(X, y, **kw)
        return self

    def predict_proba(self, X: Any) -> Any:
        return self.estimator.predict_proba(X)

    def predict(self, X: Any) -> Any:
        classes = np.asarray(self.estimator.classes_)
        if len(classes) != 2:
            return self.estimator.predict(X)
        P = np.asarray(self.estimator.predict_proba(X), dtype=float)
        return classes[Cutoff(float(self.threshold), int(self.index)).decide(P)]

    def __getattr__(self, name: str) -> Any:
        # decision_function, score_samples, ... when the wrapped model has them
        if name in ("decision_function", "score_samples"):
            return getattr(self.__dict__.get("estimator"), name)
        raise AttributeError(name)


class ThresholdedFactory:
    """A model factory whose models decide at ``cutoff`` (:class:`Thresholded` around what
    ``base`` gives); ``base`` stays reachable for a model that must not take the bank's cut-off
    (an extraction copy learning the model's decisions already learns them)."""

    def __init__(self, base: Any, cutoff: Cutoff) -> None:
        self.base = base
        self.cutoff = cutoff

    def __call__(self) -> Any:
        return Thresholded(self.base(), self.cutoff.threshold, self.cutoff.index)


def without_cutoff(factory: Any) -> Any:
    """``factory`` without the bank's cut-off (its base), or itself."""
    return factory.base if isinstance(factory, ThresholdedFactory) else factory


class CutoffTarget:
    """A loaded target whose ``predict`` is the bank's decision at ``cutoff`` on its
    ``predict_proba`` (see the module); everything else is the wrapped target's. ``estimator``
    (a scikit-learn model's) comes back :class:`Thresholded`, so that a model wrapping the
    deployed one (an output defence) decides as it does."""

    def __init__(self, target: Any, cutoff: Cutoff) -> None:
        if "proba" not in getattr(target, "capabilities", frozenset()):
            raise TargetError(
                "model.decision_threshold: the model gives no probabilities (labels only), so "
                "no cut-off can be applied to them; remove decision_threshold or load a model "
                "that outputs probabilities")
        check_two_classes(target.classes_, cutoff.threshold)
        self.inner = target
        self.cutoff = cutoff
        self.classes_ = np.asarray(target.classes_)
        self.input_kind: InputKind = target.input_kind
        self.capabilities = target.capabilities

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.asarray(self.inner.predict_proba(X), dtype=float)

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.cutoff.decide(self.predict_proba(X))]

    @property
    def estimator(self) -> Any:
        est = getattr(self.inner, "estimator", None)
        if est is None:
            raise AttributeError("estimator")
        return Thresholded(est, self.cutoff.threshold, self.cutoff.index)

    def __getattr__(self, name: str) -> Any:  # score(), gradient(), url, model_factory, ...
        if name in ("inner", "cutoff"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"CutoffTarget({self.inner!r}, {self.cutoff.words(self.classes_)})"


def cutoff_of(model: Any, depth: int = 6) -> Cutoff | None:
    """The bank's cut-off ``model`` (a target or estimator) decides at: a
    :class:`CutoffTarget`'s, or that of a :class:`Thresholded` model found through
    ``estimator`` / ``estimator_`` (a defence around the deployed model); None without one."""
    for _ in range(depth):
        if model is None:
            return None
        if isinstance(model, CutoffTarget):
            return model.cutoff
        if isinstance(model, Thresholded):
            return Cutoff(float(model.threshold), int(model.index))
        model = model.__dict__.get("estimator_", model.__dict__.get("estimator")) if hasattr(
            model, "__dict__") else None
    return None


def decision_columns(model: Any, proba: Any) -> np.ndarray:
    """The columns of ``proba`` (``model``'s probabilities, in its class order) that ``model``
    decides: at its cut-off (:func:`cutoff_of`) where it has one and ``proba`` has two columns,
    else the most probable class. What an attack reads as "the model is right on a record" is
    this decision, not the most probable class (they differ on every record whose score of the
    positive class lies between the cut-off and 0.5).

    Example:
        >>> P = np.array([[0.7, 0.3], [0.95, 0.05]])
        >>> model = Thresholded(None, threshold=0.1, index=1)
        >>> decision_columns(model, P).tolist(), decision_columns(object(), P).tolist()
        ([1, 0], [0, 0])
    """
    P = np.asarray(proba, dtype=float)
    cutoff = cutoff_of(model)
    if cutoff is not None and P.ndim == 2 and P.shape[1] == 2:
        return np.asarray(cutoff.decide(P))
    return np.asarray(np.argmax(P, axis=1))


class DecidedAt:
    """A fitted copy of a model's *scores* deciding at the bank's ``cutoff`` (an extraction
    copy's decisions, compared with the model's); probabilities and everything else are the
    copy's."""

    def __init__(self, model: Any, cutoff: Cutoff) -> None:
        self.model = model
        self.cutoff = cutoff
        self.classes_ = np.asarray(model.classes_)

    def predict_proba(self, X: Any) -> Any:
        return self.model.predict_proba(X)

    def predict(self, X: Any) -> np.ndarray:
        P = np.asarray(self.model.predict_proba(X), dtype=float)
        return self.classes_[self.cutoff.decide(P)]

    def __getattr__(self, name: str) -> Any:
        if name in ("model", "cutoff"):
            raise AttributeError(name)
        return getattr(self.model, name)


def decided_like(copy: Any, target: Any) -> Any:
    """``copy`` (of ``target``'s scores) deciding at ``target``'s cut-off where it has one and
    the copy gives two probability columns in the target's class order; else ``copy``."""
    cutoff = cutoff_of(target)
    if cutoff is None or not hasattr(copy, "predict_proba"):
        return copy
    own = [str(c) for c in np.asarray(getattr(copy, "classes_", [])).tolist()]
    theirs = [str(c) for c in np.asarray(getattr(target, "classes_", [])).tolist()]
    if len(own) != 2 or own != theirs:
        return copy
    return DecidedAt(copy, cutoff)
