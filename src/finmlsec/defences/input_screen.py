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
* :class:`InputScreen`: the defence combining them; ``apply`` fits the model and the screen and
  returns a :class:`ScreenedClassifier` whose ``decide(X)`` gives a decision and reason per record
  and whose ``predict`` refuses rejected inputs.

Example:
    >>> normalise_text("c\\u0430rd\\u200b l\\u0456m\\u0456t")  # Cyrillic a, i and a zero-width space
    'card limit'
"""

from __future__ import annotations

import unicodedata
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, OutlierMixin, clone
from sklearn.ensemble import IsolationForest
from sklearn.utils import _safe_indexing
from sklearn.utils.validation import check_is_fitted, validate_data

from finmlsec.datasets.schema import FeatureSchema
from finmlsec.defences._encode import numeric_encoder
from finmlsec.defences._params import check_float, check_int
from finmlsec.defences.base import DEFENCES
from finmlsec.defences.poison_filter import Decisions
from finmlsec.errors import DataError

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
        ok = FeatureSchema(features=(f,)).is_valid(X[[f.name]])
        if not ok.all():
            bad[f.name] = ~ok
    fails = np.any(list(bad.values()), axis=0) if bad else np.zeros(len(X), dtype=bool)
    reasons = tuple(
        "schema: invalid " + ", ".join(f"{n}={_py(X[n].iloc[i])!r}" for n, m in bad.items() if m[i])
        if fails[i] else "" for i in range(len(X)))
    return Decisions(accept=~fails, reasons=reasons, flags={"schema": fails})


class OODDetector(OutlierMixin, BaseEstimator):
    """Out-of-distribution detector: ``predict`` gives -1 for records scoring below the
    ``quantile`` of the training records' isolation scores, +1 otherwise.

    Example:
        >>> from sklearn.datasets import load_digits
        >>> X = load_digits().data
        >>> det = OODDetector(random_state=0).fit(X[:1000])
        >>> noise = np.random.default_rng(0).integers(0, 17, size=(20, 64))
        >>> float((det.predict(noise) == -1).mean()), round(float((det.predict(X[1000:]) == -1).mean()), 2)
        (1.0, 0.02)
    """

    def __init__(self, *, quantile: float = 0.01, n_estimators: int = 100,
                 random_state: int | None = None) -> None:
        self.quantile = quantile
        self.n_estimators = n_estimators
        self.random_state = random_state

    def fit(self, X: Any, y: Any = None) -> OODDetector:
        check_float(type(self).__name__, "quantile", self.quantile, 0.0, 0.5)
        check_int(type(self).__name__, "n_estimators", self.n_estimators, 1, None)
        if isinstance(X, pd.DataFrame):
            self.encoder_: Any = numeric_encoder(X).fit(X)
            Z = self.encoder_.transform(X)
            self.n_features_in_ = X.shape[1]
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        else:
            self.encoder_ = None
            Z = validate_data(self, _flat(X))
        self.iso_ = IsolationForest(n_estimators=self.n_estimators,
                                    random_state=self.random_state).fit(Z)
        self.offset_ = float(np.quantile(self.iso_.score_samples(Z), self.quantile))
        return self

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
        """Score minus the threshold: negative means out of distribution."""
        return self.score_samples(X) - self.offset_

    def predict(self, X: Any) -> np.ndarray:
        return np.where(self.decision_function(X) < 0, -1, 1)


def squeeze(X: Any, levels: int, lo: Any, hi: Any) -> Any:
    """Numbers coarsened to ``levels`` evenly spaced values between ``lo`` and ``hi`` per column
    (bit-depth reduction for images); DataFrame categoricals untouched."""
    if isinstance(X, pd.DataFrame):
        out = X.copy()
        for c in lo.index:
            v = out[c].astype(float)
            step = (hi[c] - lo[c]) / (levels - 1) if hi[c] > lo[c] else 1.0
            out[c] = (np.round((v - lo[c]) / step) * step + lo[c]).astype(out[c].dtype)
        return out
    arr = np.asarray(X, dtype=float)
    step = np.where(hi > lo, (hi - lo) / (levels - 1), 1.0)
    return np.round((arr - lo) / step) * step + lo


class SqueezeDetector(BaseEstimator):
    """Feature-squeezing detector around a fitted probabilistic classifier (see the module
    docstring). ``fit(X)`` on clean inputs sets ``threshold_`` so that a share ``fpr`` of them is
    flagged; ``score(X)`` is the L1 distance between the probabilities before and after
    squeezing.
    """

    def __init__(self, estimator: Any = None, *, levels: int = 8, fpr: float = 0.05) -> None:
        self.estimator = estimator
        self.levels = levels
        self.fpr = fpr

    def fit(self, X: Any, y: Any = None) -> SqueezeDetector:
        check_int(type(self).__name__, "levels", self.levels, 2, None)
        check_float(type(self).__name__, "fpr", self.fpr, 0.0, 1.0)
        self.fit_bounds(X)
        return self.calibrate(X)

    def calibrate(self, X: Any) -> SqueezeDetector:
        """Set ``threshold_`` so that a share ``fpr`` of the clean records ``X`` is flagged."""
        self.threshold_ = float(np.quantile(self.score(X), 1.0 - self.fpr))
        return self

    def fit_bounds(self, X: Any) -> None:
        """The per-column range the squeezing grid spans."""
        if isinstance(X, pd.DataFrame):
            num = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
            self.lo_: Any = X[num].min().astype(float)
            self.hi_: Any = X[num].max().astype(float)
        else:
            arr = np.asarray(X, dtype=float)
            self.lo_, self.hi_ = arr.min(axis=0), arr.max(axis=0)

    def score(self, X: Any) -> np.ndarray:
        p = np.asarray(self.estimator.predict_proba(X))
        q = np.asarray(self.estimator.predict_proba(squeeze(X, self.levels, self.lo_, self.hi_)))
        return np.abs(p - q).sum(axis=1)

    def predict(self, X: Any) -> np.ndarray:
        """True where the input looks adversarial."""
        check_is_fitted(self, "threshold_")
        return self.score(X) > self.threshold_


class ScreenedClassifier(BaseEstimator):
    """A fitted model behind an input screen: ``decide(X)`` returns a decision and reason per
    record; ``predict``/``predict_proba`` answer only if every record is accepted."""

    def __init__(self, estimator: Any, *, schema: FeatureSchema | None = None,
                 ood: OODDetector | None = None, squeezer: SqueezeDetector | None = None,
                 text: bool = False) -> None:
        self.estimator = estimator
        self.schema = schema
        self.ood = ood
        self.squeezer = squeezer
        self.text = text

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.estimator.classes_)

    def _prepare(self, X: Any) -> Any:
        return [normalise_text(t) for t in X] if self.text else X

    def decide(self, X: Any) -> Decisions:
        X = self._prepare(X)
        n = len(X)
        flags: dict[str, np.ndarray] = {}
        why: dict[str, list[str]] = {}
        if self.schema is not None:
            v = validate_rows(self.schema, X)
            flags["schema"], why["schema"] = ~v.accept, list(v.reasons)
        ok = ~flags["schema"] if "schema" in flags else np.ones(n, dtype=bool)
        idx = np.flatnonzero(ok)
        sub = X.iloc[idx] if isinstance(X, pd.DataFrame) else (
            [X[i] for i in idx] if isinstance(X, list) else np.asarray(X)[idx])
        if self.ood is not None and len(idx):
            s = np.full(n, np.inf)
            s[idx] = self.ood.decision_function(sub)
            flags["ood"] = s < 0
            why["ood"] = [f"out of distribution: isolation score {s[i]:+.3f} below threshold"
                          for i in range(n)]
        if self.squeezer is not None and len(idx):
            s = np.zeros(n)
            s[idx] = self.squeezer.score(sub)
            flags["adversarial"] = s > self.squeezer.threshold_
            why["adversarial"] = [
                f"adversarial: output moved {s[i]:.2f} under feature squeezing (> "
                f"{self.squeezer.threshold_:.2f})" for i in range(n)]
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
        return np.asarray(self.estimator.predict(self._guard(X)))

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.asarray(self.estimator.predict_proba(self._guard(X)))


@DEFENCES.register("input_screen")
class InputScreen(BaseEstimator):
    """The defence: validate, detect out-of-distribution and adversarial inputs, normalise text.

    Example:
        >>> from sklearn.datasets import load_digits
        >>> from sklearn.linear_model import LogisticRegression
        >>> X, y = load_digits(return_X_y=True)
        >>> guarded = InputScreen(random_state=0).apply(LogisticRegression(max_iter=300), X[:1000], y[:1000])
        >>> d = guarded.decide(np.vstack([X[1002:1005], np.full((1, 64), 16.0)]))
        >>> d.accept.tolist()
        [True, True, True, False]
    """

    countermeasure: ClassVar[str] = "detect_malicious_input"
    counters: ClassVar[frozenset[str]] = frozenset({"induce_false_prediction"})
    stage: ClassVar[str] = "input"
    summary: ClassVar[str] = (
        "schema validation, out-of-distribution and feature-squeezing detectors, text normalising"
    )

    def __init__(self, *, schema: FeatureSchema | None = None, ood_quantile: float = 0.01,
                 squeeze_levels: int | None = 8, squeeze_fpr: float = 0.05, text: bool = False,
                 random_state: int | None = None) -> None:
        self.schema = schema
        self.ood_quantile = ood_quantile
        self.squeeze_levels = squeeze_levels
        self.squeeze_fpr = squeeze_fpr
        self.text = text
        self.random_state = random_state

    def apply(self, estimator: Any, X: Any, y: Any) -> ScreenedClassifier:
        if self.text:
            Xn = [normalise_text(t) for t in X]
            return ScreenedClassifier(clone(estimator).fit(Xn, y), text=True)
        model = clone(estimator).fit(X, y)
        ood = OODDetector(quantile=self.ood_quantile, random_state=self.random_state).fit(X)
        sq = None
        if self.squeeze_levels is not None and hasattr(model, "predict_proba"):
            # calibrate the threshold on records the model did not see (a model is steadier on
            # its own training data), then put it in front of the model fitted on everything
            rng = np.random.default_rng(self.random_state)
            cal = np.zeros(len(y), dtype=bool)
            cal[rng.permutation(len(y))[: max(len(y) // 5, 1)]] = True
            fit_rows = _safe_indexing(X, np.flatnonzero(~cal))
            held = _safe_indexing(X, np.flatnonzero(cal))
            probe = clone(estimator).fit(fit_rows, np.asarray(y)[~cal])
            sq = SqueezeDetector(probe, levels=self.squeeze_levels, fpr=self.squeeze_fpr)
            sq.fit_bounds(X)
            sq.calibrate(held)
            sq.estimator = model
        return ScreenedClassifier(model, schema=self.schema, ood=ood, squeezer=sq)
