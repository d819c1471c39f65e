"""The countermeasure contract.

Every class registered in :data:`DEFENCES` is a scikit-learn classifier meta-estimator deriving
from :class:`Defence`:

* the constructor takes ``estimator`` (the model to defend; None where the defence provides a
  default model) and keyword parameters, stored unchanged (no work in ``__init__``);
* ``fit(X, y, **fit_params)`` validates the parameters against the class's
  ``_parameter_constraints`` (one place: :meth:`Defence.fit`), trains a clone of ``estimator``
  with the defence in place and sets only trailing-underscore attributes (``estimator_``,
  ``classes_``, ``report_``, ...); per-defence inputs beyond the training data are fit
  parameters (``sources``, ``feedback``, ``X_public``);
* the fitted defence answers ``predict`` and ``predict_proba`` (where the model has it);
* nesting defences is passing one defence as another's ``estimator``.

Class attributes describe it to the scan and the CLI:

* ``countermeasure``: the catalogue countermeasure id it implements (``modify_confidence``,
  ``pate``, ``modify_training_data``, ``detect_malicious_training_data``, ``robust_algorithm``,
  ``screen_false_prediction_data``, ``detect_malicious_input``, ``defensive_distillation``,
  ``adversarial_training``);
* ``counters``: the catalogue attack ids it is meant to weaken;
* ``stage``: where it acts: ``training_data`` (before fitting), ``training`` (the learning
  algorithm), ``output`` (what the operator returns), ``input`` (what the operator accepts),
  ``feedback`` (false-prediction data);
* ``summary``: one line for listings;
* ``neural_only`` (default False): it works on neural (torch) models only; the scan does not try
  it on others;
* ``transparent`` (default False): the fitted defence answers exactly as its fitted model
  ``estimator_`` (the defence acted on the data or the training only), so the deployable model
  is ``estimator_`` itself (:func:`deployable`: a torch model keeps its gradients for the scan);
* ``rank`` (optional): its order among the defences implementing the same countermeasure (lower
  is tried first when a scan profile tries only some); unranked defences come after, by name;
* ``input_params`` (optional): parameters the scan sets for a model's input kind (``tabular``,
  ``image``, ``text``), over the defaults (PATE: stratified queries on tabular records, fewer
  answers at less noise on images);
* ``_fast_params``: parameters that make it fast on a few hundred records (the contract tests);
* ``_sklearn_check_params``: parameters (over ``_fast_params``) for scikit-learn's estimator
  checks on their small numeric arrays;
* ``_sklearn_check_deviations``: scikit-learn estimator checks it cannot pass, each with why.

A defence that screens inputs (answers ``decide(X)`` with a decision and reason per record)
derives from :class:`InputScreening` as well: the scan measures an evasion attack through it.

Serving guards (request-level: budgets, extraction detection, input detectors) are not defences
of a model; they are registered in :data:`~finmlsec.defences.guards.GUARDS`.

Example:
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.linear_model import LogisticRegression
    >>> from finmlsec.defences import DEFENCES, apply
    >>> X, y = load_iris(return_X_y=True)
    >>> m = apply(DEFENCES.get("confidence.round")(decimals=1), LogisticRegression(max_iter=500),
    ...           X, y)
    >>> m.predict_proba(X[:1]).tolist(), type(m.estimator_).__name__
    ([[1.0, 0.0, 0.0]], 'LogisticRegression')
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.utils import get_tags
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d

from finmlsec.defences._params import validate_params
from finmlsec.ids import COUNTERMEASURE_IDS
from finmlsec.registry import Registry

# The paper's countermeasure ids are defined once, in finmlsec.ids.
COUNTERMEASURES = COUNTERMEASURE_IDS

STAGES = ("training_data", "training", "output", "input", "feedback", "gateway")


def _has(method: str) -> Any:
    def check(self: Defence) -> bool:
        model = getattr(self, "estimator_", None)
        if model is None:
            model = self._inner()
        return hasattr(model, method)

    return check


def _labels(owner: str, y: Any) -> np.ndarray:
    """Classification labels checked the scikit-learn way, as a 1-d array."""
    if y is None:
        raise ValueError(f"{owner} requires y to be passed, but the target y is None")
    y = column_or_1d(y, warn=True)
    check_classification_targets(y)
    return y


class Defence(ClassifierMixin, MetaEstimatorMixin, BaseEstimator):
    """Base class of the registered defences (see the module docstring)."""

    countermeasure: ClassVar[str]
    counters: ClassVar[frozenset[str]]
    stage: ClassVar[str]
    summary: ClassVar[str]
    neural_only: ClassVar[bool] = False
    transparent: ClassVar[bool] = False
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {}
    input_params: ClassVar[dict[str, dict[str, Any]]] = {}
    _fast_params: ClassVar[dict[str, Any]] = {}
    _sklearn_check_params: ClassVar[dict[str, Any]] = {}
    _sklearn_check_deviations: ClassVar[dict[str, str]] = {}

    estimator: Any

    def fit(self, X: Any, y: Any = None, **fit_params: Any) -> Defence:
        """Validate the parameters, then train with the defence in place (:meth:`_fit`; the fit
        parameters it takes are those of its signature, all of them when it takes
        ``**fit_params``, which it hands to the defended model)."""
        name = type(self).__name__
        validate_params(name, self.get_params(deep=False), self._parameter_constraints)
        takes = inspect.signature(self._fit).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in takes.values()):
            unknown = sorted(set(fit_params) - set(takes))
            if unknown:
                raise TypeError(f"{name}.fit got unexpected fit parameter(s) "
                                f"{', '.join(unknown)}; it takes "
                                f"{', '.join(list(takes)[2:]) or 'none'}")
        if not getattr(self, "prefit", False):  # an adopted model needs no training labels
            y = _labels(name, y)
        self._fit(X, y, **fit_params)
        return self

    def fit_cost(self) -> float:
        """How many fits of the model it defends one fit of the defence makes, at most, each
        counted as one on the whole training data (a voter or teacher on a part of it counts
        as a whole one: a small fit is not proportionally cheaper): 1 for a defence that trains
        the model once. The scan scales the time limits of the units that train through the
        defence with it (:func:`finmlsec.scan.plan.fits_expected`)."""
        return 1.0

    def _fit(self, X: Any, y: Any) -> None:
        """Train with the defence in place, setting trailing-underscore attributes only.

        A subclass adds the keyword fit parameters it takes (``sources=None``, or
        ``**fit_params`` to hand them all to the defended model); :meth:`fit` refuses the others
        before the call, so the base takes none."""
        raise NotImplementedError

    def _default_estimator(self, X: Any = None) -> Any:
        """The model defended when ``estimator`` is None (``X``: the training data, if known)."""
        return LogisticRegression(max_iter=1000)

    def _inner(self, X: Any = None) -> Any:
        return self.estimator if self.estimator is not None else self._default_estimator(X)

    def _adopt(self, fitted: Any) -> None:
        """Take ``fitted`` as ``estimator_``, with its classes and input description."""
        self.estimator_ = fitted
        self.classes_ = np.asarray(fitted.classes_)
        for attr in ("n_features_in_", "feature_names_in_"):
            if hasattr(fitted, attr):
                setattr(self, attr, getattr(fitted, attr))

    def predict(self, X: Any) -> np.ndarray:
        """The fitted model's decision."""
        check_is_fitted(self, "estimator_")
        return np.asarray(self.estimator_.predict(X))

    @available_if(_has("predict_proba"))
    def predict_proba(self, X: Any) -> np.ndarray:
        """The fitted model's probabilities."""
        check_is_fitted(self, "estimator_")
        return np.asarray(self.estimator_.predict_proba(X))

    def __sklearn_tags__(self) -> Any:
        return with_inner_input_tags(super().__sklearn_tags__(), self._inner())


def with_inner_input_tags(tags: Any, inner: Any) -> Any:
    """``tags`` accepting the inputs (sparse, missing values) the wrapped ``inner`` accepts."""
    inner_tags = get_tags(inner)
    tags.input_tags.sparse = inner_tags.input_tags.sparse
    tags.input_tags.allow_nan = inner_tags.input_tags.allow_nan
    return tags


class InputScreening:
    """Declares that a fitted model screens its inputs: ``decide(X)`` returns one decision and
    reason per record (a :class:`~finmlsec.defences.poison_filter.Decisions`), ``estimator_``
    is the model behind the screen."""

    def decide(self, X: Any) -> Any:
        raise NotImplementedError


def apply(defence: Any, estimator: Any, X: Any, y: Any, **fit_params: Any) -> Any:
    """``defence`` (unchanged: a clone is fitted) around ``estimator``, trained on ``(X, y)``.

    >>> from sklearn.tree import DecisionTreeClassifier
    >>> from finmlsec.defences.robust import TrimmedLossClassifier
    >>> d = TrimmedLossClassifier(trim=0.25)
    >>> m = apply(d, DecisionTreeClassifier(random_state=0), [[0], [1], [2], [3]], [0, 0, 1, 1])
    >>> m.predict([[3]]).tolist(), hasattr(d, "estimator_")
    ([1], False)
    """
    return clone(defence).set_params(estimator=estimator).fit(X, y, **fit_params)


def deployable(model: Any) -> Any:
    """The model that answers for ``model``: a fitted :attr:`Defence.transparent` defence is its
    ``estimator_`` (repeatedly, for nested ones); anything else is itself."""
    while isinstance(model, Defence) and type(model).transparent:
        model = model.estimator_
    return model


def released(model: Any, X: Any, y: Any) -> tuple[Any, Any, np.ndarray]:
    """The training data ``(X, y)`` as the fitted defences of ``model`` (nested, outermost
    first) hand them to the model generator, and the position in ``X`` of each record handed
    over: every training-data defence (``stage == "training_data"``) applies its
    ``release(X, y) -> (X, y, positions)``; defences at later stages leave the data as they
    are. A training-data defence without ``release`` is a CapabilityError: what it shares is
    unknown, and an attack on the shared data would be measured on the wrong data.

    >>> from sklearn.tree import DecisionTreeClassifier
    >>> X, y = [[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1]
    >>> released(DecisionTreeClassifier().fit(X, y), X, y)[2].tolist()
    [0, 1, 2, 3]
    """
    from finmlsec.errors import CapabilityError

    rows = np.arange(len(X))
    est = model
    while isinstance(est, Defence):
        if type(est).stage == "training_data":
            release = getattr(est, "release", None)
            if not callable(release):
                raise CapabilityError(
                    f"{type(est).__name__} changes the training data before the model generator "
                    "sees them but does not say how (no release method): the shared data "
                    "cannot be attacked as shared")
            X, y, kept = release(X, y)
            rows = rows[np.asarray(kept)]
        est = getattr(est, "estimator_", None)
    return X, y, rows


DEFENCES: Registry[type[Defence]] = Registry("defence")
