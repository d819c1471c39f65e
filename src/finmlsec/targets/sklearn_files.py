"""scikit-learn models from files: skops (safe) and pickle/joblib (refused unless trusted).

skops files are loaded with :func:`skops.io.load`, which builds only types it trusts: skops'
defaults (scikit-learn's estimators, numpy, scipy), ``numpy.dtype`` (read from an empty array's
header, no code runs: scikit-learn's imputers store the dtypes they fitted), plus the
``trusted_types`` the spec lists
(``model.trusted_types``; tree ensembles need ``sklearn.tree._tree.Tree``, XGBoost and LightGBM
their booster and estimator classes). An unknown type is refused with the list of names to add.

Pickle and joblib files run arbitrary code when they are loaded, so they are refused unless the
file is marked trusted (``trusted: true`` in the spec, or ``--trust-pickle``).

Outlier detectors (``IsolationForest``, ``OneClassSVM``, ``LocalOutlierFactor(novelty=True)``:
``predict`` gives +1 inlier / -1 outlier and no ``classes_``) become an :class:`OutlierTarget`.

Example:
    >>> import numpy as np
    >>> from sklearn.ensemble import IsolationForest
    >>> X = np.random.default_rng(0).normal(size=(200, 2))
    >>> t = OutlierTarget(IsolationForest(random_state=0).fit(X))
    >>> t.classes_.tolist(), t.predict(np.array([[0.0, 0.0], [8.0, 8.0]])).tolist()
    ([0, 1], [0, 1])
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from finmlsec.errors import TargetError, UntrustedFileError
from finmlsec.schema import InputKind
from finmlsec.targets.base import SklearnTarget, Target

#: types trusted beyond skops' defaults: skops rebuilds a dtype from an empty array's header
SAFE_TYPES = frozenset({"numpy.dtype"})

#: scale of the logistic map from a detector's decision score to an anomaly "probability"
SCORE_SCALE = 0.05


def _exists(path: Path) -> None:
    if not path.is_file():
        raise TargetError(f"model file {str(path)!r} does not exist; check model.path in the spec")


def _looks_like_pickle(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(2)
    return len(head) == 2 and head[0] == 0x80 and head[1] <= 5


def load_skops(path: Path, *, trusted_types: Sequence[str] = (), trust_all: bool = False) -> Any:
    """Load an estimator from a skops file, trusting skops' defaults plus ``trusted_types``.

    ``trust_all`` (the spec's ``trusted: true``) trusts every type the file names.
    """
    import skops.io as sio

    _exists(path)
    if not zipfile.is_zipfile(path):
        kind = "a pickle/joblib file" if _looks_like_pickle(path) else "not a skops file"
        hint = (
            "; use format: pickle (only for a file you trust) or re-save it with skops.io.dump"
            if kind.startswith("a pickle")
            else "; write it with skops.io.dump(model, path)"
        )
        raise TargetError(f"{str(path)!r} is {kind} (a skops file is a zip archive){hint}")
    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # corrupt archive, missing schema.json, ...
        raise TargetError(f"{str(path)!r} is not a valid skops file: {exc}") from None
    unknown = [t for t in untrusted if t not in SAFE_TYPES | set(trusted_types)]
    if unknown and not trust_all:
        lines = "\n".join(f"    - {t}" for t in unknown)
        raise UntrustedFileError(
            f"the skops file {str(path)!r} contains type(s) that are not trusted: {unknown}. "
            "skops builds only types it trusts; loading others could run their code. If you "
            "trust this file and these types, list them in the spec:\n  model:\n    "
            f"trusted_types:\n{lines}"
        )
    try:
        return sio.load(path, trusted=list(untrusted))
    except Exception as exc:
        raise TargetError(f"cannot load skops file {str(path)!r}: {exc}") from None


def load_pickle(path: Path, *, trusted: bool) -> Any:
    """Load a pickle/joblib file, only if ``trusted`` (loading runs code from the file)."""
    if not trusted:
        raise UntrustedFileError(
            f"refusing to load {str(path)!r}: pickle/joblib files run arbitrary code when loaded, "
            "so a malicious file would take over this process. Load it only if you trust who "
            "wrote it: set 'trusted: true' under model: in the spec, or pass --trust-pickle. "
            "Better: re-save the model with skops (format: skops)"
        )
    _exists(path)
    import joblib

    try:
        return joblib.load(path)
    except Exception as exc:
        raise TargetError(f"cannot load {str(path)!r} as a pickle/joblib file: {exc}") from None


def is_outlier_detector(estimator: Any) -> bool:
    """An unsupervised detector: predict() gives +1/-1 and there are no classes."""
    from sklearn.base import is_outlier_detector as _sk_is_outlier

    try:
        if _sk_is_outlier(estimator):
            return True
    except Exception:  # objects that are not scikit-learn estimators at all
        return False
    return not hasattr(estimator, "classes_") and hasattr(estimator, "offset_")


class OutlierTarget:
    """An outlier detector seen as a two-class target: ``0`` normal, ``1`` anomaly.

    ``predict_proba`` is a monotone map of the detector's decision score,
    ``p(anomaly) = 1 / (1 + exp(decision / 0.05))``: 0.5 at the detector's own threshold, so the
    argmax agrees with its ``predict``; it is a score, not a calibrated probability.

    Example:
        >>> import numpy as np
        >>> from sklearn.ensemble import IsolationForest
        >>> X = np.random.default_rng(0).normal(size=(100, 2))
        >>> OutlierTarget(IsolationForest(random_state=0).fit(X)).predict_proba(X[:2]).shape
        (2, 2)
    """

    def __init__(self, estimator: Any, *, input_kind: InputKind = "tabular") -> None:
        if not hasattr(estimator, "decision_function"):
            raise TargetError(
                f"{type(estimator).__name__} has no decision_function(); an outlier target needs "
                "one (IsolationForest, OneClassSVM, LocalOutlierFactor(novelty=True))"
            )
        self.estimator = estimator
        self.input_kind: InputKind = input_kind
        self.classes_ = np.array([0, 1])
        self.capabilities = frozenset({"proba", "label", "score"})

    def score(self, X: Any) -> np.ndarray:
        """Anomaly score: higher is more anomalous (minus the detector's decision function)."""
        return -np.asarray(self.estimator.decision_function(X), dtype=float).ravel()

    def predict_proba(self, X: Any) -> np.ndarray:
        z = np.clip(self.score(X) / SCORE_SCALE, -500, 500)
        p = 1.0 / (1.0 + np.exp(-z))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Any) -> np.ndarray:
        return (np.asarray(self.estimator.predict(X)).ravel() == -1).astype(int)

    def __repr__(self) -> str:
        return f"OutlierTarget({type(self.estimator).__name__})"


def sklearn_target(estimator: Any, *, input_kind: InputKind = "tabular") -> Target:
    """The right target for a loaded scikit-learn compatible object."""
    if is_outlier_detector(estimator):
        return OutlierTarget(estimator, input_kind=input_kind)
    if not hasattr(estimator, "predict"):
        raise TargetError(
            f"the file holds a {type(estimator).__name__}, which has no predict(); expected a "
            "fitted estimator or pipeline"
        )
    return SklearnTarget(estimator, input_kind=input_kind)
