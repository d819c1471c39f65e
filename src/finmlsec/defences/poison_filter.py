"""Detect and remove malicious training data: label noise, high-loss records, outliers, bad sources.

:class:`PoisonFilter` runs several detectors over the training data and rejects a record when
at least ``min_votes`` of them flag it, with a reason per record:

* ``confident_learning`` (Northcutt et al. 2021): out-of-fold probabilities from ``cv``-fold
  cross-validation; a record labelled ``i`` is flagged when another class ``j`` reaches its
  per-class threshold (the mean out-of-fold confidence of records labelled ``j``) and is the most
  likely such class: the label disagrees with what the rest of the data says;
* ``trim`` (Jagielski et al. 2018): the ``contamination`` share with the highest loss after
  iterative trimmed refitting (:func:`finmlsec.defences.robust.trim_fit`);
* ``outlier``: an isolation forest per class, fitted on the records of that class: a record
  unlike the others of its label (contamination ``contamination / 2``).

With ``sources`` (who supplied each record), each source's trust is the share of its records no
detector flagged (or the ``trust`` given for it); every record of a source below ``min_trust``
is rejected. ``apply`` fits the estimator on the accepted records.

Calibration on the data (the defaults, ``min_votes=None``): confident learning's flag rate is
its estimate of the share of wrong labels (the off-diagonal share of its confident joint).
``contamination`` is the most the filter assumes poisoned: TRIM removes the smaller of it and
``NOISY`` times that estimate (on clean data it then removes little). When a detector flags more than
``NOISY`` (1.5) times ``contamination``, the labels are noisier than the poisoning explains
(genuinely hard records, not flips) and a majority of the detectors must agree to reject a
record; otherwise one vote is enough. :attr:`Decisions.notes` records the estimate and the
decision. On German credit (a linear model is right on about 75% of the records) confident
learning alone flags 18% of the clean training records and 30% after 10% of flips; removing
them all costs more accuracy than the flips do.

Example:
    >>> import numpy as np
    >>> from sklearn.datasets import load_breast_cancer
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> idx = np.random.default_rng(0).choice(len(y), 57, replace=False)
    >>> noisy = y.copy(); noisy[idx] = 1 - noisy[idx]
    >>> d = PoisonFilter(contamination=0.1).decide(X, noisy)
    >>> round(float(np.mean(~d.accept[idx])), 2), round(float(np.mean(~np.delete(d.accept, idx))), 2)
    (0.89, 0.01)
    >>> print(d.reasons[int(idx[0])])
    confident_learning: labelled 0, out-of-fold p(1)=0.85 >= threshold 0.81; trim: loss ... among the highest 10%
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from sklearn.base import clone
from sklearn.ensemble import IsolationForest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline

from finmlsec.arrays import take_rows
from finmlsec.defences._params import Float, Int, Satisfies, check_int, validate_params
from finmlsec.defences.base import DEFENCES, Defence
from finmlsec.defences.robust import label_loss, trim_fit
from finmlsec.errors import DataError
from finmlsec.schema import FeatureSchema, preprocessor

DETECTORS = ("confident_learning", "trim", "outlier")
#: a detector flagging more than this multiple of the contamination means noisy labels
NOISY = 1.5


@dataclass(frozen=True, eq=False)
class Decisions:
    """Per-record screening decisions: ``accept`` mask, a ``reasons`` string per record (empty
    when accepted), the raw flags of each detector, and the trust measured per source."""

    accept: np.ndarray
    reasons: tuple[str, ...]
    flags: dict[str, np.ndarray] = field(default_factory=dict)
    source_trust: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def rejected(self) -> np.ndarray:
        """Indices of the rejected (quarantined) records."""
        return np.flatnonzero(~self.accept)

    def summary(self) -> dict[str, int]:
        """How many records each detector flagged, and how many were rejected."""
        out = {name: int(f.sum()) for name, f in self.flags.items()}
        out["rejected"] = int((~self.accept).sum())
        return out


def _encode_labels(y: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y)
    if y.ndim != 1 or len(y) == 0:
        raise DataError(f"labels must be a non-empty 1-d array, got shape {y.shape}")
    classes, idx = np.unique(y, return_inverse=True)
    return classes, idx


def confident_learning(model: Any, X: Any, y: Any, *, cv: int = 5,
                       random_state: int | None = 0) -> tuple[np.ndarray, list[str]]:
    """Flags and reasons of the confident-learning label check (see the module docstring)."""
    classes, yi = _encode_labels(y)
    n_splits = int(min(cv, np.bincount(yi).min()))
    if n_splits < 2:
        raise DataError("confident learning needs at least 2 records of every class")
    folds = StratifiedKFold(n_splits, shuffle=True, random_state=random_state)
    P = cross_val_predict(clone(model), X, yi, cv=folds, method="predict_proba")
    t = np.array([P[yi == j, j].mean() for j in range(len(classes))])
    above = t[None, :] <= P
    best = np.argmax(np.where(above, P, -1.0), axis=1)
    flag = above.any(axis=1) & (best != yi)
    reasons = [
        f"confident_learning: labelled {classes[yi[i]]}, out-of-fold p({classes[best[i]]})="
        f"{P[i, best[i]]:.2f} >= threshold {t[best[i]]:.2f}" if flag[i] else ""
        for i in range(len(yi))
    ]
    return flag, reasons


@DEFENCES.register("poison_filter")
class PoisonFilter(Defence):
    """Screen training data with several detectors and fit a clone of ``estimator`` on what
    passes; see the module docstring. ``model``: the classifier the detectors use (default:
    logistic regression on one-hot/scaled features); ``schema``: the records' feature schema,
    whose tabular fields the default model and the outlier detector encode (free text left out;
    without it, the bounded encoding of :func:`finmlsec.schema.preprocessor` from the data);
    ``min_votes``: detectors that must flag a record to reject it (None: calibrated on the data,
    see the module docstring).
    ``fit(X, y, sources=None)``: ``sources`` names each record's provider (for source trust);
    ``decisions_`` keeps the decisions."""

    countermeasure: ClassVar[str] = "detect_malicious_training_data"
    counters: ClassVar[frozenset[str]] = frozenset({"generate_malicious_model"})
    stage: ClassVar[str] = "training_data"
    summary: ClassVar[str] = (
        "remove suspicious training records (confident learning, TRIM, outliers, source trust)"
    )

    transparent: ClassVar[bool] = True
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "detectors": [Satisfies(lambda v: not isinstance(v, str) and len(v) > 0
                                and all(d in DETECTORS for d in v),
                                f"a non-empty tuple of {list(DETECTORS)}")],
        "contamination": [Float(0.0, 0.5, closed_lo=False)], "cv": [Int(2)],
        "min_votes": [Int(1), None], "min_trust": [Float(0.0, 1.0)],
        "trust": [Satisfies(lambda v: isinstance(v, dict), "a dict"), None],
        "random_state": [Int(0), None],
        "schema": [Satisfies(lambda v: isinstance(v, FeatureSchema), "a FeatureSchema"), None],
    }
    _sklearn_check_deviations: ClassVar[dict[str, str]] = {
        "check_fit2d_1sample": "needs two records of every class to cross-validate; it says so in "
                               "its own words (a DataError), not scikit-learn's"}

    def __init__(self, estimator: Any = None, *,
                 detectors: tuple[str, ...] = ("confident_learning", "trim"),
                 model: Any = None, contamination: float = 0.1, cv: int = 5,
                 min_votes: int | None = None,
                 trust: dict[str, float] | None = None, min_trust: float = 0.5,
                 random_state: int | None = 0, schema: FeatureSchema | None = None) -> None:
        self.estimator = estimator
        self.detectors = detectors
        self.model = model
        self.contamination = contamination
        self.cv = cv
        self.min_votes = min_votes
        self.trust = trust
        self.min_trust = min_trust
        self.random_state = random_state
        self.schema = schema

    def _encoder(self, X: Any) -> Any:
        """The unfitted encoding of records: the schema's tabular fields where the schema
        describes ``X``'s columns, else the bounded encoding from the data."""
        if self.schema is not None and hasattr(X, "columns"):
            tab = self.schema.tabular()
            if tab.features and set(tab.names) <= set(X.columns):
                return preprocessor(tab, categories="data")
        return preprocessor(X=X)

    def _model(self, X: Any) -> Any:
        if self.model is not None:
            return self.model
        return make_pipeline(self._encoder(X), LogisticRegression(max_iter=1000))

    def decide(self, X: Any, y: Any, sources: Any = None) -> Decisions:
        """Run the detectors; one decision and reason per record (nothing is fitted)."""
        name = type(self).__name__
        validate_params(name, self.get_params(deep=False), self._parameter_constraints)
        if self.min_votes is not None:
            check_int(name, "min_votes", self.min_votes, 1, len(self.detectors))
        y = np.asarray(y)
        n = len(y)
        model = self._model(X)
        flags: dict[str, np.ndarray] = {}
        why: dict[str, list[str]] = {}
        if "confident_learning" in self.detectors:
            flags["confident_learning"], why["confident_learning"] = confident_learning(
                model, X, y, cv=self.cv, random_state=self.random_state)
        notes: list[str] = []
        share = self.contamination
        if "confident_learning" in flags:
            estimate = float(flags["confident_learning"].mean())
            notes.append(f"confident learning estimates {estimate:.1%} of the labels wrong")
            share = min(share, NOISY * estimate)  # clean data: trim little
        if "trim" in self.detectors:
            n_keep = max(int(np.ceil((1 - share) * n)), 1)
            fitted, keep, _ = trim_fit(model, X, y, n_keep) if n_keep < n else (
                clone(model).fit(X, y), np.ones(n, dtype=bool), 0)
            loss = label_loss(fitted, X, y)
            flags["trim"] = ~keep
            why["trim"] = [f"trim: loss {loss[i]:.2f} among the highest {share:.0%}"
                           if not keep[i] else "" for i in range(n)]
        if "outlier" in self.detectors:
            Z = self._encoder(X).fit_transform(X)
            out = np.zeros(n, dtype=bool)
            for c in np.unique(y):
                rows = np.flatnonzero(y == c)
                if len(rows) < 10:
                    continue
                iso = IsolationForest(contamination=self.contamination / 2,
                                      random_state=self.random_state).fit(Z[rows])
                out[rows] = iso.predict(Z[rows]) == -1
            flags["outlier"] = out
            why["outlier"] = ["outlier: unlike the other records of its class" if out[i] else ""
                              for i in range(n)]
        votes = np.sum(list(flags.values()), axis=0)
        noisy = [d for d, f in flags.items() if f.mean() > NOISY * self.contamination]
        need = self.min_votes if self.min_votes is not None else (
            len(flags) // 2 + 1 if noisy else 1)
        accept = votes < need
        notes += [
            f"{d} flags {int(flags[d].sum())} of {n} records ({flags[d].mean():.0%}), more than "
            f"{NOISY} x the assumed contamination ({self.contamination:.0%}): the labels look "
            "noisy (genuine hard records, not only flips)" for d in noisy]
        notes.append(f"{need} of {len(flags)} detectors must flag a record to reject it")
        reasons = ["; ".join(why[d][i] for d in flags if why[d][i]) if not accept[i] else ""
                   for i in range(n)]
        trust: dict[str, float] = {}
        if sources is not None:
            src = np.asarray(sources).astype(str)
            if len(src) != n:
                raise DataError(f"sources has {len(src)} entries for {n} records")
            given = self.trust or {}
            for s in map(str, np.unique(src)):
                mine = src == s
                trust[s] = float(given.get(s, np.mean(votes[mine] == 0)))
                if trust[s] < self.min_trust:
                    for i in np.flatnonzero(mine):
                        reasons[i] = "; ".join(
                            r for r in (reasons[i],
                                        f"source {s!r}: trust {trust[s]:.2f} < {self.min_trust}")
                            if r)
                    accept[mine] = False
        return Decisions(accept=accept, reasons=tuple(reasons), flags=flags, source_trust=trust,
                         notes=tuple(notes))

    def screen(self, X: Any, y: Any, sources: Any = None) -> np.ndarray:
        """The accept mask (True = keep the record)."""
        return self.decide(X, y, sources).accept

    def _fit(self, X: Any, y: Any, sources: Any = None, **fit_params: Any) -> None:
        """Fit a clone of ``estimator`` on the accepted records; ``decisions_`` keeps the rest."""
        self.decisions_ = self.decide(X, y, sources)
        keep = np.flatnonzero(self.decisions_.accept)
        self._adopt(clone(self._inner(X)).fit(take_rows(X, keep), np.asarray(y)[keep],
                                             **fit_params))

    def _default_estimator(self, X: Any = None) -> Any:
        return self._model(X)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False  # the detectors encode dense records
        return tags
