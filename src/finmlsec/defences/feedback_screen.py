"""Screen false-prediction data (flow G) before it reaches the training data.

:class:`FeedbackScreen` is fitted on the trusted training data and then judges each batch of
false-prediction reports, one decision and reason per record:

* ``contradiction``: a model trained on the trusted data predicts another class with at least
  its class's confident-learning threshold (the mean cross-validated confidence of that class):
  the report claims a label the trusted data firmly contradict;
* ``outlier``: the record is unlike the trusted data (isolation forest; below the
  ``outlier_quantile`` of the trusted records' scores);
* ``repetition``: at least ``max_similar`` earlier reports claimed the same label for records
  differing from this one in at most ``max_fields_differ`` fields. Honest error reports are
  diverse; a feedback-loop attacker submits near copies of one profile, round after round. The
  screen remembers every report it has seen (``reset`` forgets);
* ``decisive``: the reports about one case (near-identical records claiming the same label, this
  batch's and those accepted before) would by themselves turn the decision on that case to the
  label they claim: an influence test on the merge. The screen's model is trained on the trusted
  data, the reports accepted so far and the batch, once as it is and once with the case's
  reports weighted 0 (the same rows, so a learner that samples rows draws the same ones); the
  reports are held when the first decides the case as claimed and the second does not. A false
  report pays off exactly when it decides its own case; the bank's reviewer, who can check the
  claim, merges a held report that is true;
* ``source``: with ``sources`` (who reported), a reporter whose share of flagged reports so far
  exceeds ``1 - min_trust`` has every report quarantined.

With ``favourable`` (the outcome a reporter gains from: an approval, a payment let through), only
claims of that outcome face the contradiction and decisive checks. A report of the other outcome
(a default, a confirmed fraud) is what the bank's own books record, and merging it cannot win
anyone the favourable decision; the repetition, outlier and source checks still apply to it.

``screen(X, y) -> accept mask`` is what the feedback-loop attack (``poisoning.feedback_loop``)
takes as its ``screen``; ``decide`` returns the reasons for the gateway's quarantine. The screen
assumes that what it accepts is merged into the training data (the decisive check starts from
that data). Unfitted, the screen applies only the repetition and source checks. The screen's
``model`` should be the algorithm the model generator retrains (the scan gives it the deployed
model's); the default, a logistic regression, does not see how far one record moves a tree
ensemble.

Example:
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"a": rng.integers(0, 50, 300), "b": rng.integers(0, 50, 300)})
    >>> y = (X.a > 25).astype(int).to_numpy()
    >>> s = FeedbackScreen(max_similar=2, max_fields_differ=1).fit(X, y)
    >>> reports = pd.DataFrame({"a": [5, 5, 5, 30], "b": [20, 21, 22, 7]})
    >>> d = s.decide(reports, np.array([1, 1, 1, 1]))
    >>> d.accept.tolist()
    [False, False, False, True]
    >>> print(d.reasons[2])
    contradiction: trusted model says 0 with p=1.00 >= threshold 0.91; repetition: 2 earlier report(s) claim 1 for near-identical records
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.ensemble import IsolationForest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline

from finmlsec.arrays import concat_rows, take_rows
from finmlsec.attacks.poisoning import fit_weighted
from finmlsec.defences._params import Bool, Float, Int, Satisfies, validate_params
from finmlsec.defences.base import DEFENCES, Defence
from finmlsec.defences.poison_filter import Decisions
from finmlsec.errors import DataError
from finmlsec.schema import preprocessor


def _as_frame(X: Any) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X.reset_index(drop=True)
    arr = np.asarray(X)
    return pd.DataFrame(arr.reshape(len(arr), -1))


@DEFENCES.register("feedback_screen")
class FeedbackScreen(Defence):
    """Quarantine suspicious false-prediction reports; see the module docstring.

    ``fit(X, y, feedback=None, feedback_y=None, sources=None)`` learns what the trusted ``(X,
    y)`` say (``model_``, thresholds, outlier scores), screens the reports ``feedback`` (labels
    ``feedback_y``, providers ``sources``; ``decisions_``) and fits a clone of ``estimator``
    (default: the screen's ``model``) on the trusted data plus the accepted reports. The fitted
    screen then takes later batches of reports with :meth:`decide` / :meth:`screen`.
    """

    countermeasure: ClassVar[str] = "screen_false_prediction_data"
    counters: ClassVar[frozenset[str]] = frozenset(
        {"generate_malicious_model", "dos_training_data_provider"})
    stage: ClassVar[str] = "feedback"
    summary: ClassVar[str] = (
        "quarantine feedback that contradicts trusted data, is an outlier, or repeats a profile"
    )
    #: records compared field by field (an image's pixels are fields); free text is one field,
    #: so every report would repeat every other: the scan does not try it on text models
    input_kinds: ClassVar[tuple[str, ...]] = ("tabular", "image")

    transparent: ClassVar[bool] = True
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "outlier_quantile": [Float(0.0, 0.5)], "max_similar": [Int(1)],
        "max_fields_differ": [Int(0)], "min_trust": [Float(0.0, 1.0)], "cv": [Int(2)],
        "hold_decisive": [Bool()],
        "favourable": [None, Satisfies(lambda v: isinstance(v, str | int | np.integer),
                                       "a class label (str or int)")],
        "random_state": [Int(0), None],
    }
    _sklearn_check_deviations: ClassVar[dict[str, str]] = {
        "check_fit2d_1sample": "needs two records of every class to cross-validate; it says so in "
                               "its own words (a DataError), not scikit-learn's"}

    def __init__(self, estimator: Any = None, *, model: Any = None,
                 outlier_quantile: float = 0.01,
                 max_similar: int = 3, max_fields_differ: int = 2, min_trust: float = 0.5,
                 cv: int = 5, hold_decisive: bool = True, favourable: Any = None,
                 random_state: int | None = 0) -> None:
        self.estimator = estimator
        self.model = model
        self.outlier_quantile = outlier_quantile
        self.max_similar = max_similar
        self.max_fields_differ = max_fields_differ
        self.min_trust = min_trust
        self.cv = cv
        self.hold_decisive = hold_decisive
        self.favourable = favourable
        self.random_state = random_state

    def _model(self, X: Any) -> Any:
        return self.model if self.model is not None else make_pipeline(
            preprocessor(X=X), LogisticRegression(max_iter=1000))

    def _default_estimator(self, X: Any = None) -> Any:
        return self._model(X)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False  # reports are compared field by field
        return tags

    def fit_cost(self) -> float:
        """The screen's model once per fold and once on the trusted data, and the model it
        defends (the scan's screen uses the deployed model's algorithm as its ``model``)."""
        return float(self.cv + 2)

    def _fit(self, X: Any, y: Any, feedback: Any = None, feedback_y: Any = None,
             sources: Any = None, **fit_params: Any) -> None:
        self._learn(X, y)
        if feedback is None:
            self._adopt(clone(self._inner(X)).fit(X, y, **fit_params))
            return
        self.decisions_ = self.decide(feedback, feedback_y, sources)
        ok = np.flatnonzero(self.decisions_.accept)
        fx = take_rows(feedback, ok)
        fy = np.asarray(feedback_y)[ok]
        if isinstance(X, pd.DataFrame):
            Xm: Any = pd.concat([X, fx], ignore_index=True)
        else:
            Xm = np.concatenate([np.asarray(X), np.asarray(fx)])
        self._adopt(clone(self._inner(X)).fit(Xm, np.concatenate([np.asarray(y), fy]),
                                              **fit_params))

    def _learn(self, X: Any, y: Any) -> None:
        """Learn what the trusted training data say (model, thresholds, outlier scores)."""
        y = np.asarray(y)
        model = self._model(X)
        self.classes_ = np.unique(y)
        n_splits = int(min(self.cv, min(np.sum(y == c) for c in self.classes_)))
        if n_splits < 2 or len(self.classes_) < 2:
            raise DataError("FeedbackScreen needs trusted data with at least 2 records of each "
                            "of at least 2 classes")
        folds = StratifiedKFold(n_splits, shuffle=True, random_state=self.random_state)
        P = cross_val_predict(clone(model), X, y, cv=folds, method="predict_proba")
        self.thresholds_ = np.array([P[y == c, j].mean() for j, c in enumerate(self.classes_)])
        self.model_ = clone(model).fit(X, y)
        self.X_trusted_, self.y_trusted_ = X, y
        self.encoder_ = preprocessor(X=X).fit(X)
        Z = self.encoder_.transform(X)
        self.iso_ = IsolationForest(random_state=self.random_state).fit(Z)
        self.outlier_cut_ = float(np.quantile(self.iso_.score_samples(Z), self.outlier_quantile))
        self.reset()

    def reset(self) -> None:
        """Forget the reports seen so far."""
        self.seen_: list[tuple[np.ndarray, Any]] = []
        self.source_counts_: dict[str, list[int]] = {}
        #: the reports accepted so far (assumed merged): records, labels, field values
        self.merged_: list[tuple[Any, np.ndarray, np.ndarray]] = []
        #: the reports held so far that claim the favourable outcome (they still name a case)
        self.held_: list[tuple[Any, np.ndarray, np.ndarray]] = []

    def decide(self, X: Any, y: Any, sources: Any = None) -> Decisions:
        """One decision and reason per report; remembers the reports for later batches."""
        validate_params(type(self).__name__, self.get_params(deep=False),
                        self._parameter_constraints)
        if not hasattr(self, "seen_"):
            self.reset()
        y = np.asarray(y)
        n = len(y)
        frame = _as_frame(X)
        if len(frame) != n:
            raise DataError(f"{len(frame)} reports but {n} labels")
        flags: dict[str, np.ndarray] = {}
        why: dict[str, list[str]] = {}
        # the claims that face the contradiction and decisive checks (see ``favourable``)
        claims = np.ones(n, dtype=bool) if self.favourable is None else np.array(
            [str(v) == str(self.favourable) for v in y], dtype=bool)
        if hasattr(self, "model_"):
            P = np.asarray(self.model_.predict_proba(X))
            best = np.argmax(P, axis=1)
            pred = self.classes_[best]
            conf = P[np.arange(n), best]
            flags["contradiction"] = (pred != y) & (conf >= self.thresholds_[best]) & claims
            why["contradiction"] = [
                f"contradiction: trusted model says {pred[i]} with p={conf[i]:.2f} >= threshold "
                f"{self.thresholds_[best[i]]:.2f}" for i in range(n)]
            score = self.iso_.score_samples(self.encoder_.transform(X))
            flags["outlier"] = score < self.outlier_cut_
            why["outlier"] = [f"outlier: isolation score {score[i]:.3f} below the trusted "
                              f"{self.outlier_quantile:.0%} quantile {self.outlier_cut_:.3f}"
                              for i in range(n)]
        rep = np.zeros(n, dtype=bool)
        rep_why = [""] * n
        values = frame.to_numpy(dtype=object)
        for i in range(n):
            row = values[i]
            similar = sum(
                1 for old, lab in self.seen_
                if lab == y[i] and len(old) == len(row)
                and int(np.sum(old != row)) <= self.max_fields_differ
            )
            if similar >= self.max_similar:
                rep[i] = True
                rep_why[i] = (f"repetition: {similar} earlier report(s) claim {y[i]} for "
                              "near-identical records")
            self.seen_.append((row, y[i]))
        flags["repetition"] = rep
        why["repetition"] = rep_why
        if self.hold_decisive and hasattr(self, "model_"):
            flags["decisive"], why["decisive"] = self._decisive(
                X, y, values, claims, ~np.any(list(flags.values()), axis=0))
        flagged = np.any(list(flags.values()), axis=0)
        reasons = ["; ".join(why[d][i] for d in flags if flags[d][i]) for i in range(n)]
        accept = ~flagged
        trust: dict[str, float] = {}
        if sources is not None:
            src = np.asarray(sources).astype(str)
            if len(src) != n:
                raise DataError(f"sources has {len(src)} entries for {n} reports")
            for i, s in enumerate(src):
                counts = self.source_counts_.setdefault(s, [0, 0])
                counts[0] += 1
                counts[1] += int(flagged[i])
            for s in map(str, np.unique(src)):
                seen, bad = self.source_counts_[s]
                trust[s] = 1.0 - bad / seen
                if trust[s] < self.min_trust:
                    for j in np.flatnonzero(src == s):
                        accept[j] = False
                        reasons[j] = "; ".join(r for r in (
                            reasons[j], f"source {s!r}: trust {trust[s]:.2f} < {self.min_trust}"
                        ) if r)
        if hasattr(self, "model_") and accept.any():
            ok = np.flatnonzero(accept)
            self.merged_.append((take_rows(X, ok), y[ok], values[ok]))
        if hasattr(self, "model_") and (~accept & claims).any():
            no = np.flatnonzero(~accept & claims)
            self.held_.append((take_rows(X, no), y[no], values[no]))
        return Decisions(accept=accept, reasons=tuple(reasons), flags=flags, source_trust=trust)

    def _near(self, case: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Which of ``rows`` differ from ``case`` in at most ``max_fields_differ`` fields."""
        if len(rows) == 0 or rows.shape[1] != len(case):
            return np.zeros(len(rows), dtype=bool)
        return np.asarray(np.sum(rows != case, axis=1) <= self.max_fields_differ)

    def _fit_weighted(self, X: Any, y: np.ndarray, w: np.ndarray) -> Any:
        """The screen's model fitted on ``X, y`` with sample weights ``w``."""
        return fit_weighted(clone(self._model(self.X_trusted_)), X, y, w)

    def _decisive(self, X: Any, y: np.ndarray, values: np.ndarray, claims: np.ndarray,
                  candidate: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """The influence test (``decisive`` in the module docstring): the ``candidate`` reports
        (those no other check flagged) are what the merge would add; those that ``claims`` the
        favourable outcome are tested, judged on every report of the batch and every one held
        before that claims it (a case's held reports still name the case)."""
        n = len(y)
        flag = np.zeros(n, dtype=bool)
        why = [""] * n
        idx, ev = np.flatnonzero(candidate), np.flatnonzero(claims)
        if idx.size == 0 or ev.size == 0:
            return flag, why
        dtype = np.asarray(self.y_trusted_).dtype
        Xc, yc = take_rows(X, idx), y[idx].astype(dtype)
        Xe = concat_rows(take_rows(X, ev), *(hx for hx, _, _ in self.held_))
        ye = np.concatenate([y[ev], *(hy for _, hy, _ in self.held_)]).astype(dtype)
        ve = np.concatenate([values[ev], *(hv for _, _, hv in self.held_)])
        # the trusted data, the merged reports and the candidates, in one fixed row order
        Xall = concat_rows(self.X_trusted_, *(mx for mx, _, _ in self.merged_), Xc)
        yall = np.concatenate([np.asarray(self.y_trusted_),
                               *(my.astype(dtype) for _, my, _ in self.merged_), yc])
        n0, nc = len(self.y_trusted_), idx.size
        merged_y = np.concatenate([my.astype(dtype) for _, my, _ in self.merged_]) \
            if self.merged_ else np.zeros(0, dtype=dtype)
        merged_v = np.concatenate([mv for _, _, mv in self.merged_]) if self.merged_ \
            else np.zeros((0, values.shape[1]), dtype=object)
        ones = np.ones(len(yall))
        after = np.asarray(self._fit_weighted(Xall, yall, ones).predict(Xe)) == ye
        before = np.asarray(self.model_.predict(Xe)) == ye  # decided as the trusted data say
        tested = np.zeros(idx.size, dtype=bool)
        for k in np.flatnonzero(after & ~before):
            case = ve[k]
            mine = self._near(case, values[idx]) & (yc == ye[k]) & claims[idx] & ~tested
            if not mine.any():
                continue  # the case moved with other reports, or its reports were judged
            tested |= mine
            old = self._near(case, merged_v) & (merged_y == ye[k])
            w = ones.copy()
            w[n0:n0 + len(old)][old] = 0.0
            w[len(yall) - nc:][mine] = 0.0
            same = np.flatnonzero(self._near(case, ve) & (ye == ye[k]))
            without = np.asarray(self._fit_weighted(Xall, yall, w).predict(
                take_rows(Xe, same))) == ye[same]
            if (after[same] & ~without).any():
                members = idx[mine]
                for i in members:
                    flag[i] = True
                    why[i] = (f"decisive: these {members.size} report(s)"
                              + (f" and {int(old.sum())} merged before" if old.any() else "")
                              + " would by themselves turn the decision on a case reported "
                              f"(near-identical records) to {y[i]}; held for review")
        return flag, why

    def screen(self, X: Any, y: Any, sources: Any = None) -> np.ndarray:
        """The accept mask over one batch of reports (True = may be merged)."""
        return self.decide(X, y, sources).accept
