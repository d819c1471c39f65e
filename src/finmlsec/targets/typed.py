"""The model receives each column in the dtype it was trained with, whatever the schema calls it.

A scan holds categorical fields as text (so that categories compare as the schema lists them),
but a model trained on integer codes must get integers back: fed the strings ``'1'``, ``'2'``, a
one-hot encoder that learnt ``1``, ``2`` sees unknown categories and the model silently degrades.
:class:`AsTrained` wraps a scikit-learn estimator (fitting and predicting through
:meth:`FeatureSchema.as_trained <finmlsec.schema.FeatureSchema.as_trained>`; a clone
stays an unfitted estimator that casts, so model factories keep the guarantee) and
:class:`TypedTarget` any other target (ONNX, torch, remote). :func:`typed` picks one, and leaves
the model as it is when the schema declares no dtype that differs from how the scan holds data.

Example:
    >>> import pandas as pd
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import OneHotEncoder
    >>> from sklearn.linear_model import LogisticRegression
    >>> from finmlsec.schema import Feature, FeatureSchema
    >>> X = pd.DataFrame({"purpose": [1, 2, 1, 2]}); y = [0, 1, 0, 1]
    >>> model = make_pipeline(OneHotEncoder(handle_unknown="ignore"), LogisticRegression()).fit(X, y)
    >>> schema = FeatureSchema(features=[Feature(name="purpose", type="categorical",
    ...                                          categories=["1", "2"], dtype="int64")])
    >>> as_text = pd.DataFrame({"purpose": ["1", "2"]})
    >>> model.predict_proba(as_text).round(2).tolist()  # unknown categories: a constant answer
    [[0.5, 0.5], [0.5, 0.5]]
    >>> AsTrained(schema, model).predict(as_text).tolist()
    [0, 1]
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone

from finmlsec.schema import FeatureSchema, FeatureType


def needs_cast(schema: FeatureSchema | None) -> bool:
    """Whether some field is held by the scan in another dtype than the model was trained with
    (a categorical field with a numeric ``dtype``)."""
    if schema is None:
        return False
    return any(f.type == FeatureType.CATEGORICAL and f.dtype not in (None, "object", "str",
                                                                     "string")
               for f in schema.features)


class AsTrained(ClassifierMixin, BaseEstimator):
    """``estimator`` fed its columns in the dtypes the ``schema`` declares (see the module) and,
    with ``labels`` (the class values the deployed model was trained with, in the order of the
    label indices the scan uses), trained on those values: a model whose parameters name its
    classes (``class_weight={'bad': 10, 'good': 1}``, a ``FixedThresholdClassifier`` with
    ``pos_label='bad'``) cannot be fitted on indices. It still answers in indices.

    Example:
        >>> from sklearn.linear_model import LogisticRegression
        >>> m = AsTrained(None, LogisticRegression(class_weight={"bad": 5.0, "good": 1.0}),
        ...               labels=["bad", "good"]).fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
        >>> m.classes_.tolist(), m.predict([[0.0], [3.0]]).tolist()
        ([0, 1], [0, 1])
        >>> m.fit([[0.0], [1.0], [2.0], [3.0]], ["bad", "bad", "good", "good"]).predict([[3.0]])
        array(['good'], dtype='<U4')
    """

    def __init__(self, schema: Any = None, estimator: Any = None, labels: Any = None) -> None:
        self.schema = schema
        self.estimator = estimator
        self.labels = labels

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self.estimator, "classes_")

    def _index(self) -> dict[str, int]:
        return {str(v): i for i, v in enumerate(self.labels)}

    @property
    def classes_(self) -> np.ndarray:
        inner = np.asarray(self.estimator.classes_)
        if not self.__dict__.get("indices_", False):  # fitted on the class values themselves
            return inner
        index = self._index()
        return np.array([index[str(c)] for c in inner])

    def _x(self, X: Any) -> Any:
        return self.schema.as_trained(X) if self.schema is not None else X

    def fit(self, X: Any, y: Any, **kw: Any) -> AsTrained:
        from sklearn.utils.validation import has_fit_parameter

        est = clone(self.estimator)
        y = np.asarray(y)
        # label indices (the scan's) are trained as the class values and answered as indices;
        # labels given as values (an extraction copy learning the model's answers) stay values
        self.indices_ = self.labels is not None and y.dtype.kind in "iu"
        if self.indices_:
            y = np.asarray(self.labels, dtype=object)[y]
            y = y.astype(str) if all(isinstance(v, str) for v in self.labels) else y
        steps = getattr(est, "steps", None)
        last = steps[-1][1] if steps else est
        if "sample_weight" in kw and not has_fit_parameter(last, "sample_weight"):
            # a meta-estimator without weights (FixedThresholdClassifier): rows of weight 0
            # are left out, the others count once
            w = np.asarray(kw.pop("sample_weight"))
            keep = np.flatnonzero(w > 0)
            X = X.iloc[keep] if hasattr(X, "iloc") else np.asarray(X)[keep]
            y = y[keep]
        if steps and "sample_weight" in kw:  # a Pipeline routes weights to its last step
            kw[f"{steps[-1][0]}__sample_weight"] = kw.pop("sample_weight")
        self.estimator = est.fit(self._x(X), y, **kw)
        return self

    def predict(self, X: Any) -> Any:
        pred = self.estimator.predict(self._x(X))
        if not self.__dict__.get("indices_", False):
            return pred
        index = self._index()
        return np.array([index[str(v)] for v in np.asarray(pred)])

    def predict_proba(self, X: Any) -> Any:
        return self.estimator.predict_proba(self._x(X))

    def __getattr__(self, name: str) -> Any:
        # decision_function, score_samples, ... when the wrapped model has them
        if name in ("decision_function", "score_samples"):
            inner = getattr(self.__dict__.get("estimator"), name)
            return lambda X: inner(self._x(X))
        raise AttributeError(name)


class TypedTarget:
    """A non-scikit-learn target fed its columns in the declared dtypes."""

    def __init__(self, target: Any, schema: FeatureSchema) -> None:
        self.inner = target
        self.schema = schema
        self.classes_ = target.classes_
        self.input_kind = target.input_kind
        self.capabilities = target.capabilities

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.asarray(self.inner.predict_proba(self.schema.as_trained(X)))

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.inner.predict(self.schema.as_trained(X)))

    def score(self, X: Any) -> np.ndarray:
        return np.asarray(self.inner.score(self.schema.as_trained(X)))

    def __getattr__(self, name: str) -> Any:
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"TypedTarget({self.inner!r})"


def typed(target: Any, schema: FeatureSchema | None) -> Any:
    """``target`` fed as trained (see the module docstring); unchanged when no cast is needed."""
    if target is None or not needs_cast(schema) or getattr(target, "input_kind", "") != "tabular":
        return target
    assert schema is not None
    est = getattr(target, "estimator", None)
    if est is not None and type(target).__name__ in ("SklearnTarget", "OutlierTarget"):
        from finmlsec.targets.sklearn_files import sklearn_target

        if type(target).__name__ == "SklearnTarget":
            return sklearn_target(AsTrained(schema, est), input_kind="tabular")
    return TypedTarget(target, schema)
