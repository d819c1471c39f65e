"""Detect and remove malicious input: schema validation, out-of-distribution and adversarial-input
detection, text normalisation.

* :func:`validate_rows`: each record against the :class:`FeatureSchema` (types, ranges,
  categories), with the failing fields as the reason;
* :class:`OODDetector`: an isolation forest on the training inputs; a record scoring below the
  ``quantile`` of the training scores is out of distribution;
* :class:`SqueezeDetector`: feature squeezing (Xu et al. 2018): the model's probabilities on the
  input and on a squeezed copy (numbers coarsened to a few levels, categories untouched);
  adversarial inputs sit just across a boundary, so squeezing moves their output much more
  than a normal input's. The threshold is the ``1 - fpr`` quantile on clean data;
* :func:`normalise_text`: Unicode NFKC, invisible and bidirectional-control characters removed,
  confusable letters (Cyrillic, Greek) folded to Latin;
* :class:`InputScreen`: the defence combining them; ``fit`` fits the model and the screen (a
  :class:`ScreenedClassifier`); ``decide(X)`` gives a decision and reason per record and
  ``predict`` refuses rejected inputs.

Example:
    >>> normalise_text("c\\u0430rd\\u200b l\\u0456m\\u0456t")  # Cyrillic a, i and a zero-width space
    'card limit'
"""

from __future__ import annotations

import unicodedata
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    MetaEstimatorMixin,
    OutlierMixin,
    clone,
)
from sklearn.ensemble import IsolationForest
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.utils import _safe_indexing, get_tags
from sklearn.utils.validation import _num_samples, check_is_fitted, validate_data

from finmlsec.defences._params import Bool, Float, Int
from finmlsec.defences.base import DEFENCES, Defence, InputScreening
from finmlsec.defences.guards import GUARDS, Guard
from finmlsec.defences.poison_filter import Decisions
from finmlsec.errors import ConfigError, DataError
from finmlsec.schema import FeatureSchema, preprocessor

#: Characters that change no visible glyph (zero-width, joiners, bidi controls, BOM, soft hyphen).
INVISIBLE = frozenset(
    ["\u00ad", "\u034f", "\u061c", "\u115f", "\u1160", "\u17b4", "\u17b5", "\u180e", "\u3164",
     "\ufeff", "\uffa0"]
    + [chr(c) for c in range(0x200B, 0x2010)]
    + [chr(c) for c in range(0x202A, 0x202F)]
    + [chr(c) for c in range(0x2060, 0x2070)]
    + [chr(c) for c in range(0xFE00, 0xFE10)]
)

#: Letters that look like Latin ones (Cyrillic and Greek), folded to Latin.
CONFUSABLES = {
    **dict(zip("\u0430\u0432\u0435\u0455\u0456\u0458\u043a\u043c\u043d\u043e\u0440\u0441\u0442"
               "\u0443\u0445\u04cf\u0501\u051b\u051d\u0261",
               "abesijkmhopctyxldqwg", strict=True)),
    **dict(zip("\u0410\u0412\u0415\u0405\u0406\u0408\u041a\u041c\u041d\u041e\u0420\u0421\u0422"
               "\u0423\u0425",
               "ABESIJKMHOPCTYX", strict=True)),
    **dict(zip("\u03b1\u03b2\u03b5\u03b9\u03ba\u03bd\u03bf\u03c1\u03c4\u03c5\u03c7",
               "abeikvoptux", strict=True)),
    **dict(zip("\u0391\u0392\u0395\u0396\u0397\u0399\u039a\u039c\u039d\u039f\u03a1\u03a4\u03a5"
               "\u03a7",
               "ABEZHIKMNOPTYX", strict=True)),
}
_FOLD = str.maketrans({**{c: "" for c in INVISIBLE}, **CONFUSABLES})


def normalise_text(text: str) -> str:
    """NFKC, invisible characters removed, confusables folded to Latin, spaces collapsed.

    >>> normalise_text("\\uff22\\uff41\\uff4c\\uff41\\uff4e\\uff43\\uff45  \\u202echeck")  # full-width
    'Balance check'
    """
    if not isinstance(text, str):
        raise DataError(f"normalise_text expects a str, got {type(text).__name__}")
    t = unicodedata.normalize("NFKC", text).translate(_FOLD)
    return " ".join(t.split())


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _flat(X: Any) -> Any:
    """Images of any shape as one row of pixels per record; anything else unchanged (so that
    scikit-learn's validation still refuses 1-d and sparse input with its own message)."""
    if isinstance(X, np.ndarray) and X.ndim > 2:
        return X.reshape(len(X), -1)
    return X


def as_frame(schema: FeatureSchema, X: Any) -> pd.DataFrame:
    """``X`` as a DataFrame with the schema's columns: a DataFrame as is; a numeric array (e.g.
    images, one feature per pixel in row-major order) flattened to one row per record."""
    if isinstance(X, pd.DataFrame):
        return X
    if isinstance(X, np.ndarray | list) and len(X) and not isinstance(X[0], str | dict):
        arr = np.asarray(X)
        arr = arr.reshape(len(arr), -1) if arr.ndim != 2 else arr
        if arr.shape[1] == len(schema.features):
            return pd.DataFrame(arr, columns=list(schema.names))
        raise DataError(
            f"an array of {arr.shape[1]} values per record does not match the schema's "
            f"{len(schema.features)} features; give records with one value per feature "
            f"({schema.names[:3]}...) or a DataFrame with those columns")
    raise DataError(f"expected a pandas DataFrame with columns {schema.names} or a numeric "
                    f"array with one value per feature, got {type(X).__name__}")


def validate_rows(schema: FeatureSchema, X: Any) -> Decisions:
    """Accept mask and reasons: which records satisfy the schema, and which fields fail. ``X``:
    a DataFrame, or a numeric array with one value per feature (images are flattened)."""
    X = as_frame(schema, X)
    missing = [n for n in schema.names if n not in X.columns]
    if missing:
        raise DataError(f"missing column(s) {missing}; the schema expects {schema.names}")
    bad: dict[str, np.ndarray] = {}
    for f in schema.features:
        # a derived field is checked alone for its range and, against its sources, for its
        # derivation (a one-feature schema cannot hold the derivation)
        ok = FeatureSchema(features=(f.model_copy(update={"derived": None}),)).is_valid(
            X[[f.name]])
        if f.derived is not None:
            ok = ok & np.asarray(f.derived.consistent(X, X[f.name]), dtype=bool)
        if not ok.all():
            bad[f.name] = ~ok
    fails = np.any(list(bad.values()), axis=0) if bad else np.zeros(len(X), dtype=bool)
    reasons = tuple(
        "schema: invalid " + ", ".join(f"{n}={_py(X[n].iloc[i])!r}" for n, m in bad.items() if m[i])
        if fails[i] else "" for i in range(len(X)))
    return Decisions(accept=~fails, reasons=reasons, flags={"schema": fails})


_INPUT_GUARD: dict[str, Any] = {
    "countermeasure": "detect_malicious_input", "counters": frozenset({"induce_false_prediction"}),
    "stage": "input"}


@GUARDS.register("input_screen.ood")
class OODDetector(OutlierMixin, Guard):
    """Out-of-distribution detector: ``predict`` gives -1 for records scoring below the
    ``quantile`` of the training records' isolation scores, +1 otherwise. A serving guard (the
    gateway's screen ``input_screen.ood``); the scan measures it within :class:`InputScreen`.

    ``envelope``: also -1 for a record with a number beyond the range of the records it was
    fitted on widened by this share of that range on each side (None: off). An isolation
    forest's score saturates beyond the data: a record far outside it in a few fields isolates
    no faster than a real extreme record of the training data, and passes (the midpoint of the
    market schema's ranges, a 25% intraday range at 10% daily volatility, scores like a crisis
    day). ``decision_function`` is below -1 for such a record (-1 minus the excess, in ranges).

    Example:
        >>> from sklearn.datasets import load_digits
        >>> X = load_digits().data
        >>> det = OODDetector(random_state=0).fit(X[:1000])
        >>> noise = np.random.default_rng(0).integers(0, 17, size=(20, 64))
        >>> float((det.predict(noise) == -1).mean()), round(float((det.predict(X[1000:]) == -1).mean()), 2)
        (1.0, 0.02)
    """

    countermeasure: ClassVar[str] = _INPUT_GUARD["countermeasure"]
    counters: ClassVar[frozenset[str]] = _INPUT_GUARD["counters"]
    stage: ClassVar[str] = _INPUT_GUARD["stage"]
    summary: ClassVar[str] = "out-of-distribution inputs: isolation forest on the training inputs"
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "quantile": [Float(0.0, 0.5)], "n_estimators": [Int(1)], "random_state": [Int(0), None],
        "envelope": [Float(0.0, 100.0), None]}

    def __init__(self, *, quantile: float = 0.01, n_estimators: int = 100,
                 random_state: int | None = None, envelope: float | None = None) -> None:
        self.quantile = quantile
        self.n_estimators = n_estimators
        self.random_state = random_state
        self.envelope = envelope

    def fit(self, X: Any, y: Any = None) -> OODDetector:
        self.validate()
        if isinstance(X, pd.DataFrame):
            self.encoder_: Any = preprocessor(X=X).fit(X)
            Z = self.encoder_.transform(X)
            self.n_features_in_ = X.shape[1]
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        else:
            self.encoder_ = None
            Z = validate_data(self, _flat(X))
        self.iso_ = IsolationForest(n_estimators=self.n_estimators,
                                    random_state=self.random_state).fit(Z)
        self.offset_ = float(np.quantile(self.iso_.score_samples(Z), self.quantile))
        self.bounds_: dict[Any, tuple[float, float, float]] | None = None
        if self.envelope is not None and not hasattr(Z, "tocsr"):
            src = X if isinstance(X, pd.DataFrame) else np.asarray(Z)
            self.bounds_ = {}  # column -> (low, high, range) of the fitted records
            for c in _numeric_columns(src):
                v = np.asarray(src[c] if isinstance(src, pd.DataFrame) else src[:, c],
                               dtype=float)
                v = v[np.isfinite(v)]
                if len(v):
                    lo, hi = float(v.min()), float(v.max())
                    self.bounds_[c] = (lo, hi, hi - lo if hi > lo else max(abs(hi), 1.0))
        return self

    def excess(self, X: Any) -> np.ndarray:
        """Per record, how far its furthest number lies beyond the fitted range widened by
        ``envelope`` (in ranges; 0 inside, and for missing values); zeros when off."""
        check_is_fitted(self, "iso_")
        n = _num_samples(X)
        out = np.zeros(n)
        if not getattr(self, "bounds_", None):
            return out
        assert self.bounds_ is not None and self.envelope is not None
        arr = None if isinstance(X, pd.DataFrame) else np.asarray(self._z(X), dtype=float)
        for c, (lo, hi, width) in self.bounds_.items():
            v = np.asarray(X[c] if arr is None else arr[:, c], dtype=float)
            with np.errstate(invalid="ignore"):
                e = np.maximum(lo - width * self.envelope - v, v - hi - width * self.envelope)
            out = np.fmax(out, np.where(np.isnan(e), 0.0, e / width))
        return np.maximum(out, 0.0)

    def _z(self, X: Any) -> Any:
        check_is_fitted(self, "iso_")
        if self.encoder_ is not None:
            return self.encoder_.transform(X)
        return validate_data(self, _flat(X), reset=False)

    def score_samples(self, X: Any) -> np.ndarray:
        """Isolation score (lower = more unusual)."""
        Z = self._z(X)
        return np.asarray(self.iso_.score_samples(Z))

    def decision_function(self, X: Any) -> np.ndarray:
        """Score minus the threshold: negative means out of distribution (below -1: beyond the
        ``envelope``)."""
        d = self.score_samples(X) - self.offset_
        if getattr(self, "bounds_", None):
            e = self.excess(X)
            d = np.where(e > 0, np.minimum(d, -1.0 - e), d)
        return d

    def predict(self, X: Any) -> np.ndarray:
        return np.where(self.decision_function(X) < 0, -1, 1)


def _numeric_columns(X: Any) -> list[Any]:
    """The numeric columns of a DataFrame (names), or every column of an array (indices)."""
    if isinstance(X, pd.DataFrame):
        return [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])
                and not pd.api.types.is_bool_dtype(X[c])]
    return list(range(_flat(np.asarray(X)).shape[1]))


def squeeze(X: Any, levels: int, lo: Any, hi: Any) -> Any:
    """Numbers coarsened to ``levels`` evenly spaced values between ``lo`` and ``hi`` per column
    (bit-depth reduction for images); DataFrame categoricals untouched. Integer columns (and
    integer arrays) keep their dtype: the coarsened values are truncated to integers."""
    if isinstance(X, pd.DataFrame):
        out = X.copy()
        for c in lo.index:
            v = out[c].astype(float)
            step = (hi[c] - lo[c]) / (levels - 1) if hi[c] > lo[c] else 1.0
            out[c] = (np.round((v - lo[c]) / step) * step + lo[c]).astype(out[c].dtype)
        return out
    arr = np.asarray(X, dtype=float)
    step = np.where(hi > lo, (hi - lo) / (levels - 1), 1.0)
    out = np.round((arr - lo) / step) * step + lo
    dtype = np.asarray(X).dtype
    return out.astype(dtype) if dtype.kind in "iu" else out


def _check_rows(est: Any, X: Any, *, reset: bool) -> Any:
    """``X`` checked the scikit-learn way for a detector that hands it on: a DataFrame keeps its
    columns (names and count checked), an array must be numeric and finite (images of more than
    two dimensions are checked flattened and returned as they are)."""
    if isinstance(X, pd.DataFrame):
        validate_data(est, X, skip_check_array=True, reset=reset)
        if X.shape[0] < 1:
            raise ValueError(f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of "
                             f"1 is required by {type(est).__name__}.")
        return X
    if isinstance(X, np.ndarray) and X.ndim > 2:
        validate_data(est, _flat(X), reset=reset)
        return X
    return validate_data(est, X, reset=reset)


@GUARDS.register("input_screen.squeeze")
class SqueezeDetector(OutlierMixin, Guard):
    """Feature-squeezing detector around a fitted probabilistic classifier (see the module
    docstring); a serving guard (the gateway's screen ``input_screen.squeeze``, watching the
    served model); the scan measures it within :class:`InputScreen`. ``fit(X)`` on clean inputs sets ``threshold_`` so that a share ``fpr`` of them is
    flagged; ``score(X)`` is the L1 distance between the probabilities before and after
    squeezing. It follows scikit-learn's outlier convention: ``predict`` gives -1 for inputs
    that look adversarial (score above ``threshold_``) and +1 otherwise, ``decision_function``
    is ``threshold_ - score`` (negative: adversarial), ``score_samples`` is ``-score``.

    ``estimator`` must already be fitted and is not refitted (wrap it in
    ``sklearn.frozen.FrozenEstimator`` to keep it fitted through ``clone``). A DataFrame is handed
    to it as given (only numeric columns are squeezed); an array must be numeric and finite.

    Example:
        >>> from sklearn.datasets import load_digits
        >>> from sklearn.linear_model import LogisticRegression
        >>> X, y = load_digits(return_X_y=True)
        >>> model = LogisticRegression(max_iter=300).fit(X[:1000], y[:1000])
        >>> det = SqueezeDetector(model, levels=4, fpr=0.05).fit(X[1000:1400])
        >>> round(float((det.predict(X[1400:]) == -1).mean()), 2)
        0.04
    """

    countermeasure: ClassVar[str] = _INPUT_GUARD["countermeasure"]
    counters: ClassVar[frozenset[str]] = _INPUT_GUARD["counters"]
    stage: ClassVar[str] = _INPUT_GUARD["stage"]
    summary: ClassVar[str] = "adversarial inputs: the served model's output moves under squeezing"
    uses_model: ClassVar[bool] = True
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "levels": [Int(2)], "fpr": [Float(0.0, 1.0)]}

    def __init__(self, estimator: Any = None, *, levels: int = 8, fpr: float = 0.05) -> None:
        self.estimator = estimator
        self.levels = levels
        self.fpr = fpr

    def fit(self, X: Any, y: Any = None) -> SqueezeDetector:
        self.validate()
        self.fit_bounds(X)
        return self.calibrate(X)

    def calibrate(self, X: Any) -> SqueezeDetector:
        """Set ``threshold_`` so that a share ``fpr`` of the clean records ``X`` is flagged."""
        self.threshold_ = float(np.quantile(self.score(X), 1.0 - self.fpr))
        self.offset_ = -self.threshold_
        return self

    def fit_bounds(self, X: Any) -> None:
        """The per-column range the squeezing grid spans."""
        name = type(self).__name__
        if self.estimator is None or not hasattr(self.estimator, "predict_proba"):
            raise ConfigError(f"{name} needs a fitted probabilistic classifier (with "
                              f"predict_proba) as 'estimator'; got {self.estimator!r}")
        try:
            check_is_fitted(self.estimator)
        except NotFittedError:
            raise ConfigError(f"{name} needs a fitted classifier as 'estimator'; "
                              f"{type(self.estimator).__name__} is not fitted (wrap a fitted "
                              "one in sklearn.frozen.FrozenEstimator to keep it through clone)"
                              ) from None
        X = _check_rows(self, X, reset=True)
        if isinstance(X, pd.DataFrame):
            num = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
            self.lo_: Any = X[num].min().astype(float)
            self.hi_: Any = X[num].max().astype(float)
        else:
            arr = np.asarray(X, dtype=float)
            self.lo_, self.hi_ = arr.min(axis=0), arr.max(axis=0)

    def score(self, X: Any, y: Any = None) -> np.ndarray:
        """Per record: L1 distance between the probabilities before and after squeezing
        (``y`` is ignored)."""
        check_is_fitted(self, "lo_")
        X = _check_rows(self, X, reset=False)
        p = np.asarray(self.estimator.predict_proba(X))
        q = np.asarray(self.estimator.predict_proba(squeeze(X, self.levels, self.lo_, self.hi_)))
        return np.abs(p - q).sum(axis=1)

    def score_samples(self, X: Any) -> np.ndarray:
        """``-score(X)``: lower is more suspicious."""
        return -self.score(X)

    def decision_function(self, X: Any) -> np.ndarray:
        """``threshold_ - score(X)``: negative means the input looks adversarial."""
        check_is_fitted(self, "threshold_")
        return self.threshold_ - self.score(X)

    def predict(self, X: Any) -> np.ndarray:
        """-1 where the input looks adversarial, +1 otherwise."""
        return np.where(self.decision_function(X) < 0, -1, 1)


class ScreenedClassifier(InputScreening, ClassifierMixin, MetaEstimatorMixin, BaseEstimator):
    """A model behind an input screen: ``decide(X)`` returns a decision and reason per record;
    ``predict``/``predict_proba`` answer only if every record is accepted (else ``DataError``).

    ``fit(X, y)`` fits a clone of ``estimator`` (``estimator_``), of the OOD detector ``ood``
    on ``X`` (``ood_``) and of the feature-squeezing detector ``squeezer`` (``squeezer_``, whose
    own ``estimator`` is ignored): its threshold is calibrated on a held-out fifth of ``X``
    (chosen with ``random_state``) against a probe model fitted on the rest (a model is steadier
    on its own training data), then it watches ``estimator_``. ``schema`` validates each record.
    With ``text=True`` inputs are strings, normalised by :func:`normalise_text` (no detectors).
    :class:`InputScreen` fits one as its ``screen_``.

    Example:
        >>> from sklearn.datasets import load_digits
        >>> from sklearn.linear_model import LogisticRegression
        >>> X, y = load_digits(return_X_y=True)
        >>> sc = ScreenedClassifier(LogisticRegression(max_iter=300),
        ...                         ood=OODDetector(random_state=0)).fit(X[:1000], y[:1000])
        >>> sc.decide(np.vstack([X[1002:1004], np.full((1, 64), 16.0)])).accept.tolist()
        [True, True, False]
    """

    def __init__(self, estimator: Any = None, *, schema: FeatureSchema | None = None,
                 ood: OODDetector | None = None, squeezer: SqueezeDetector | None = None,
                 text: bool = False, random_state: int | None = None) -> None:
        self.estimator = estimator
        self.schema = schema
        self.ood = ood
        self.squeezer = squeezer
        self.text = text
        self.random_state = random_state

    def _inner(self) -> Any:
        return self.estimator if self.estimator is not None else LogisticRegression(max_iter=1000)

    def _prepare(self, X: Any) -> Any:
        return [normalise_text(t) for t in X] if self.text else X

    def _check(self, X: Any, *, reset: bool) -> None:
        """Column names and count (``feature_names_in_``, ``n_features_in_``); an array's
        shape, sparsity and values as the screen and model accept them; text is not checked."""
        if self.text:
            return
        if isinstance(X, pd.DataFrame):
            validate_data(self, X, skip_check_array=True, reset=reset)
            return
        tags = get_tags(self)
        validate_data(self, _flat(X), reset=reset, dtype=None,
                      accept_sparse=tags.input_tags.sparse,
                      ensure_all_finite="allow-nan" if tags.input_tags.allow_nan else True)

    def fit(self, X: Any, y: Any) -> ScreenedClassifier:
        name = type(self).__name__
        if y is None:
            raise ValueError(f"{name} requires y to be passed, but the target y is None")
        if self.text:
            if self.ood is not None or self.squeezer is not None:
                raise ConfigError(f"{name}: text=True screens by normalising the text; 'ood' and "
                                  "'squeezer' work on numeric records and must be None")
            self.estimator_ = clone(self._inner()).fit(self._prepare(X), y)
            self.ood_, self.squeezer_ = None, None
            self.classes_ = np.asarray(self.estimator_.classes_)
            return self
        self._check(X, reset=True)
        if not (hasattr(X, "iloc") or hasattr(X, "tocsr") or isinstance(X, np.ndarray)):
            X = np.asarray(X)
        model = clone(self._inner()).fit(X, y)
        self.ood_ = None if self.ood is None else clone(self.ood).fit(X)
        self.squeezer_ = None
        if self.squeezer is not None and hasattr(model, "predict_proba"):
            n = _num_samples(X)
            rng = np.random.default_rng(self.random_state)
            cal = np.zeros(n, dtype=bool)
            cal[rng.permutation(n)[: max(n // 5, 1)]] = True
            probe = clone(self._inner()).fit(_safe_indexing(X, np.flatnonzero(~cal)),
                                             np.asarray(y)[~cal])
            sq = clone(self.squeezer).set_params(estimator=probe)
            sq.validate()
            sq.fit_bounds(X)
            sq.calibrate(_safe_indexing(X, np.flatnonzero(cal)))
            sq.estimator = model
            self.squeezer_ = sq
        self.estimator_ = model
        self.classes_ = np.asarray(model.classes_)
        return self

    def decide(self, X: Any) -> Decisions:
        check_is_fitted(self, "estimator_")
        X = self._prepare(X)
        self._check(X, reset=False)
        n = _num_samples(X)
        flags: dict[str, np.ndarray] = {}
        why: dict[str, list[str]] = {}
        if self.schema is not None:
            v = validate_rows(self.schema, X)
            flags["schema"], why["schema"] = ~v.accept, list(v.reasons)
        ok = ~flags["schema"] if "schema" in flags else np.ones(n, dtype=bool)
        idx = np.flatnonzero(ok)
        sub = _safe_indexing(X, idx) if len(idx) < n else X
        if self.ood_ is not None and len(idx):
            s = np.full(n, np.inf)
            s[idx] = self.ood_.decision_function(sub)
            flags["ood"] = s < 0
            why["ood"] = [f"out of distribution: isolation score {s[i]:+.3f} below threshold"
                          for i in range(n)]
        if self.squeezer_ is not None and len(idx):
            s = np.zeros(n)
            s[idx] = self.squeezer_.score(sub)
            flags["adversarial"] = s > self.squeezer_.threshold_
            why["adversarial"] = [
                f"adversarial: output moved {s[i]:.2f} under feature squeezing (> "
                f"{self.squeezer_.threshold_:.2f})" for i in range(n)]
        bad = np.any(list(flags.values()), axis=0) if flags else np.zeros(n, dtype=bool)
        reasons = tuple("; ".join(why[k][i] for k in flags if flags[k][i]) for i in range(n))
        return Decisions(accept=~bad, reasons=reasons, flags=flags)

    def _guard(self, X: Any) -> Any:
        d = self.decide(X)
        if not d.accept.all():
            i = int(d.rejected[0])
            raise DataError(f"{len(d.rejected)} input(s) rejected by the input screen; first: "
                            f"record {i}: {d.reasons[i]}")
        return self._prepare(X)

    def predict(self, X: Any) -> np.ndarray:
        X = self._guard(X)
        return np.asarray(self.estimator_.predict(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        X = self._guard(X)
        return np.asarray(self.estimator_.predict_proba(X))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        inner = get_tags(self._inner())
        tags.input_tags.string = self.text
        tags.input_tags.two_d_array = not self.text
        screened = self.ood is not None or self.squeezer is not None or self.schema is not None
        tags.input_tags.sparse = inner.input_tags.sparse and not screened
        tags.input_tags.allow_nan = inner.input_tags.allow_nan and not screened
        return tags


@DEFENCES.register("input_screen")
class InputScreen(InputScreening, Defence):
    """The defence: validate, detect out-of-distribution and adversarial inputs, normalise text.

    ``fit`` fits a :class:`ScreenedClassifier` around a clone of ``estimator`` (``screen_``);
    ``estimator_`` is the model behind the screen, ``decide(X)`` the screen's decisions, and
    ``predict``/``predict_proba`` answer only if every record is accepted (else ``DataError``).

    Example:
        >>> from sklearn.datasets import load_digits
        >>> from sklearn.linear_model import LogisticRegression
        >>> X, y = load_digits(return_X_y=True)
        >>> guarded = InputScreen(LogisticRegression(max_iter=300), random_state=0)
        >>> d = guarded.fit(X[:1000], y[:1000]).decide(np.vstack([X[1002:1005], np.full((1, 64), 16.0)]))
        >>> d.accept.tolist()
        [True, True, True, False]
    """

    countermeasure: ClassVar[str] = "detect_malicious_input"
    counters: ClassVar[frozenset[str]] = frozenset({"induce_false_prediction"})
    stage: ClassVar[str] = "input"
    summary: ClassVar[str] = (
        "schema validation, out-of-distribution and feature-squeezing detectors, text normalising"
    )
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "ood_quantile": [Float(0.0, 0.5)], "squeeze_levels": [Int(2), None],
        "squeeze_fpr": [Float(0.0, 1.0)], "text": [Bool()], "random_state": [Int(0), None],
    }
    #: a screen refuses what its detectors flag: the checks predict on records it was not
    #: calibrated to accept (and compare answers across transformations of them)
    _sklearn_check_deviations: ClassVar[dict[str, str]] = dict.fromkeys((
        "check_fit_score_takes_y", "check_estimators_dtypes", "check_dtype_object",
        "check_pipeline_consistency", "check_estimators_pickle",
        "check_f_contiguous_array_estimator", "check_classifier_data_not_an_array",
        "check_classifiers_classes", "check_classifiers_train", "check_supervised_y_2d",
        "check_methods_sample_order_invariance", "check_methods_subset_invariance",
        "check_dict_unchanged", "check_fit_idempotent",
    ), "predict refuses (DataError) records its out-of-distribution or squeezing detector "
       "flags, and the checks' records include such")

    def __init__(self, estimator: Any = None, *, schema: FeatureSchema | None = None,
                 ood_quantile: float = 0.01, squeeze_levels: int | None = 8,
                 squeeze_fpr: float = 0.05, text: bool = False,
                 random_state: int | None = None) -> None:
        self.estimator = estimator
        self.schema = schema
        self.ood_quantile = ood_quantile
        self.squeeze_levels = squeeze_levels
        self.squeeze_fpr = squeeze_fpr
        self.text = text
        self.random_state = random_state

    def _screened(self) -> ScreenedClassifier:
        if self.text:
            return ScreenedClassifier(self.estimator, text=True)
        sq = None if self.squeeze_levels is None else SqueezeDetector(
            levels=self.squeeze_levels, fpr=self.squeeze_fpr)
        return ScreenedClassifier(self.estimator, schema=self.schema,
                                  ood=OODDetector(quantile=self.ood_quantile,
                                                  random_state=self.random_state),
                                  squeezer=sq, random_state=self.random_state)

    def fit_cost(self) -> float:
        """The model and, with the squeezing detector, a probe model on most of the data."""
        return 1.0 if self.squeeze_levels is None or self.text else 2.0

    def _fit(self, X: Any, y: Any) -> None:
        self.screen_ = self._screened().fit(X, y)
        self._adopt(self.screen_.estimator_)
        if hasattr(self.screen_, "n_features_in_"):
            self.n_features_in_ = self.screen_.n_features_in_

    def decide(self, X: Any) -> Decisions:
        """One decision and reason per record (see :meth:`ScreenedClassifier.decide`)."""
        check_is_fitted(self, "screen_")
        return self.screen_.decide(X)

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "screen_")
        return self.screen_.predict(X)

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "screen_")
        return self.screen_.predict_proba(X)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        inner = self._screened().__sklearn_tags__()
        tags.input_tags = inner.input_tags
        return tags
