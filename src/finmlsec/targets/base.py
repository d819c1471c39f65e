"""The model under test, seen through one small protocol.

A :class:`Target` answers ``predict_proba`` and ``predict`` on the inputs its model takes (a pandas
DataFrame for tabular models, a list of strings for text, an array for images). Framework-specific
code lives only in this package; attacks and defences see a target through an
:class:`~finmlsec.targets.oracle.Oracle`.

``capabilities`` says what the target can give: ``"proba"`` (class probabilities), ``"label"``,
``"gradient"`` (white-box gradients of the loss with respect to the input, for differentiable
models) and ``"score"`` (an anomaly score).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from finmlsec.errors import CapabilityError, TargetError
from finmlsec.schema import InputKind


@runtime_checkable
class Target(Protocol):
    """What every loaded model provides."""

    classes_: np.ndarray
    input_kind: InputKind
    capabilities: frozenset[str]

    def predict_proba(self, X: Any) -> np.ndarray: ...

    def predict(self, X: Any) -> np.ndarray: ...


class SklearnTarget:
    """A fitted scikit-learn compatible estimator (or pipeline) as a target.

    Example:
        >>> from sklearn.linear_model import LogisticRegression
        >>> import numpy as np
        >>> X = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0, 0, 1, 1])
        >>> t = SklearnTarget(LogisticRegression().fit(X, y), input_kind="image")
        >>> t.predict(np.array([[3.0]])).tolist()
        [1]
    """

    def __init__(self, estimator: Any, *, input_kind: InputKind = "tabular") -> None:
        if not hasattr(estimator, "predict"):
            raise TargetError(
                f"{type(estimator).__name__} has no predict(); a target must be a fitted model"
            )
        self.estimator = estimator
        self.input_kind: InputKind = input_kind
        caps = {"label"}
        if hasattr(estimator, "predict_proba"):
            caps.add("proba")
        if hasattr(estimator, "decision_function") or hasattr(estimator, "score_samples"):
            caps.add("score")
        self.capabilities = frozenset(caps)
        classes = getattr(estimator, "classes_", None)
        if classes is None:
            raise TargetError(
                f"{type(estimator).__name__} has no classes_; is it fitted? Fit it before use"
            )
        self.classes_ = np.asarray(classes)

    def predict_proba(self, X: Any) -> np.ndarray:
        if "proba" not in self.capabilities:
            raise CapabilityError(
                f"{type(self.estimator).__name__} gives no probabilities (no predict_proba)"
            )
        return np.asarray(self.estimator.predict_proba(X), dtype=float)

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.estimator.predict(X))

    def __repr__(self) -> str:
        return f"SklearnTarget({type(self.estimator).__name__})"


def as_target(model: Any, *, input_kind: InputKind = "tabular") -> Target:
    """Return ``model`` if it already is a :class:`Target`, else wrap a fitted estimator."""
    if isinstance(model, Target):
        return model
    return SklearnTarget(model, input_kind=input_kind)
