"""PATE: Private Aggregation of Teacher Ensembles (Papernot et al. 2017; 2018).

Teachers are trained on disjoint partitions of the sensitive data. A student is trained on
non-sensitive, unlabelled (public) data, of which at most ``max_queries`` records get a label:
the noisy arg-max of the teachers' votes. Aggregators:

* ``laplace`` (LNMax, 2017): Laplace noise of scale ``noise`` on each vote count;
* ``gnmax`` (2018): Gaussian noise of standard deviation ``noise``;
* ``confident_gnmax`` (2018): a noisy check first (the top vote count plus Gaussian noise of
  ``threshold_noise`` must reach ``threshold``); only queries passing it are answered, with GNMax.

Privacy accounting (Renyi DP, composed over the queries and converted to (epsilon, delta) with
``dp_accounting``'s RDP accountant):

* data-independent: one record changes one teacher's vote, so the vote histogram has L1
  sensitivity 2 and L2 sensitivity sqrt(2); LNMax costs as a Laplace mechanism of scale
  ``noise / 2``, GNMax ``lambda / noise**2`` at order lambda; every threshold check of
  Confident-GNMax costs a Gaussian mechanism of sensitivity 1 (``lambda / (2 threshold_noise**2)``),
  whether or not the query is answered;
* data-dependent (GNMax answers only): the smaller RDP bound of Papernot et al. (2018,
  Theorem 6) when the teachers agree strongly (q = probability that the noisy answer differs
  from the plurality), taken per query as the minimum with the data-independent cost. The
  threshold checks are still charged data-independently. The data-dependent epsilon depends on
  the sensitive data and is not itself differentially private (the paper publishes it through
  smooth sensitivity, which is not implemented here): report the data-independent figure as the
  guarantee.

The student (Papernot et al. 2018 train it semi-supervised on the public data; only the labels
cost privacy, so everything below that looks at public records alone is free):

* ``query_selection="cluster"`` (default): k-means with ``max_queries`` clusters on the public
  records; the record nearest each centre is queried, so the few labels cover the public data's
  modes (best on images: digits 0.874 against 0.761 with ``"stratified"``); ``"stratified"``: a
  random member of each cluster, a sample stratified by cluster, which the scan uses on tabular
  records: the centre-nearest records are typical ones, on imbalanced data such as credit at
  72/28 good/bad nearly all of the majority class, so the student learned the minority class
  from the noise's flips alone (student ROC AUC 0.54 against 0.68); ``"random"``: a random
  subset. None looks at sensitive data or at the teachers' votes.
* ``semi_supervised="label_spreading"``: the answered labels are spread to the public records
  over a k-nearest-neighbour graph (Zhou et al. 2004; scikit-learn's ``LabelSpreading``) and the
  student is fitted on every public record an answer reaches; ``"self_training"``: scikit-learn's
  ``SelfTrainingClassifier`` around the student; ``"none"``: the student sees the answered
  records only. Both use a numeric view of the public records: the student's preprocessing steps
  (a ``Pipeline``'s steps before the last, fitted on the public records, unlabelled) and, above
  30 columns, a PCA to 30 components fitted on the public records.
* ``teacher_spreading=True``: each teacher, instead of fitting ``estimator`` on its partition,
  spreads its partition's labels over the public records the same way and votes with them. A
  teacher still sees only its own partition of the sensitive data, so one sensitive record still
  changes one vote and the accounting is unchanged; with small partitions the votes agree more.
  Where none of a teacher's labels reaches, it votes the label of its nearest own record.

Teachers (``n_teachers="auto"``, the default): the fewest teachers whose unanimous vote stands
``margin`` (2.5) noise standard deviations clear of the others (``ceil(2.5 sigma)``; Laplace: its
standard deviation ``noise * sqrt 2``), so that with the default sigma 20, 50 teachers, but never
fewer than ``teacher_records`` (30) sensitive records a teacher. On images the scan asks for
:data:`IMAGE_PARAMS` instead: 10 answers at sigma 10 (the same epsilon as 40 at sigma 20) from 5
sigma of teachers of at least 10 images (OCR digits, 629 sensitive images: 50 teachers of 12, the
student 0.72-0.73 against 0.24-0.25 for the 20 of 31 that sigma 20 drowned). The noise, not the data, sets the count: GNMax's privacy
cost per answer depends on sigma alone, and with fewer teachers than about 2.5 sigma the noise
drowns the vote margin (on a credit_data-shaped file, 1,559 sensitive records, 10 teachers at
sigma 20: 28% of the answers differ from the plurality; 50: 15-25%); fewer, better teachers need less noise, so a larger epsilon (10 teachers
at sigma 4: ROC AUC 0.69-0.72 at epsilon 12.3). With ``balanced_votes=True`` (default) each
teacher votes for the class whose predicted probability most exceeds its mean over the teacher's
own partition: on imbalanced data a model of a few dozen records gives the majority class to
nearly everyone and the plurality would carry no ranking (a model trained class-balanced votes as
it is). The mean is over the teacher's own partition, so one sensitive record still changes one
vote and the accounting is unchanged.

Example (10 labels at epsilon < 2, spread to the 100 public records):
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> pate = PATE(make_pipeline(StandardScaler(), LogisticRegression()), n_teachers=20,
    ...             noise=10.0, max_queries=10, random_state=0).fit(
    ...     X[:400], y[:400], X_public=X[400:500])
    >>> r = pate.privacy_
    >>> r.n_answered, round(r.epsilon, 2), r.n_student_records, len(pate.queried_)
    (10, 1.91, 100, 10)
    >>> round(float(pate.score(X[500:], y[500:])), 2)
    0.87
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from scipy.special import log_ndtr
from sklearn.base import clone
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.semi_supervised import LabelSpreading, SelfTrainingClassifier
from sklearn.utils import _safe_indexing, check_array, check_consistent_length, get_tags
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from finmlsec.defences._params import Bool, Float, Int, OneOf
from finmlsec.defences.base import DEFENCES, Defence
from finmlsec.errors import DataError
from finmlsec.extras import require
from finmlsec.tasks import task_map

AGGREGATORS = ("laplace", "gnmax", "confident_gnmax")
SELECTIONS = ("cluster", "stratified", "random")
SEMI_SUPERVISED = ("label_spreading", "self_training", "none")
SPREAD_NEIGHBOURS = 7  # k of the k-nearest-neighbour graph labels spread over
SPREAD_ALPHA = 0.2  # share of a record's label taken from its neighbours at each step
VIEW_DIMS = 30  # PCA components of the numeric view of public records (above 30 columns)
#: The view standardises its columns when the largest spread exceeds the median one this many
#: times (amounts beside indicators), not when they are comparable (pixels).
SCALE_SPREAD = 10.0
RDP = "dp_accounting.rdp.rdp_privacy_accountant"
#: ``n_teachers="auto"``: the unanimous vote's margin in noise standard deviations (a unanimous
#: vote is then flipped with probability Phi(-2.5 / sqrt 2) = 4%), and the fewest sensitive
#: records a teacher gets (see :meth:`PATE.teacher_count` and docs/benchmarks.md)
MARGIN_NOISE = 2.5
MIN_PART = 30
#: What the scan gives PATE on images (digits, 10 classes; measured in docs/benchmarks.md): 10
#: answers at sigma 10 spend the same epsilon as the default 40 at sigma 20 (GNMax's RDP is
#: answers * lambda / sigma^2), and the k-NN spreading turns 10 centre-nearest answers into
#: labels for every public record; teachers of 10-30 images agree on 50-80% of the votes, so
#: the plurality needs more of them than a unanimous vote would (5 sigma: 50 teachers, of at
#: least 10 images: 629 sensitive images give 50 of 12)
IMAGE_PARAMS: dict[str, Any] = {"noise": 10.0, "max_queries": 10, "margin": 5.0,
                                "teacher_records": 10}


def _dp(module: str = "dp_accounting") -> Any:
    """dp-accounting, for PATE's privacy accounting (an optional dependency: extra 'scan')."""
    return require(module, "PATE's privacy accounting")


@functools.cache
def _orders() -> np.ndarray:
    """The Renyi orders the privacy cost is evaluated at (dp-accounting's defaults)."""
    orders = np.asarray(_dp(RDP).DEFAULT_RDP_ORDERS, dtype=float)
    orders.setflags(write=False)
    return orders


def __getattr__(name: str) -> Any:  # ORDERS: read on first use, when dp-accounting is needed
    if name == "ORDERS":
        return _orders()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def log_q_gnmax(votes: np.ndarray, sigma: float) -> float:
    """log of an upper bound on Pr[GNMax answer != plurality class] (Papernot 2018, Prop. 7)."""
    top = int(np.argmax(votes))
    gaps = votes[top] - np.delete(votes, top)
    # Pr[n_i + N(0, s^2) > n_top + N(0, s^2)] = Phi(-gap / (s sqrt 2))
    terms = log_ndtr(-gaps / (sigma * math.sqrt(2.0)))
    logq = float(np.logaddexp.reduce(terms))
    return min(logq, math.log1p(-1.0 / len(votes)))


def rdp_gnmax_data_dependent(logq: float, sigma: float, orders: np.ndarray) -> np.ndarray:
    """Per-order RDP of one GNMax answer given log q (Papernot et al. 2018, Theorem 6, with
    mu2 = sigma sqrt(log 1/q), mu1 = mu2 + 1), never above the data-independent lambda/sigma^2."""
    indep = orders / sigma**2
    if logq >= 0 or not np.isfinite(logq):
        return indep
    mu2 = sigma * math.sqrt(-logq)
    mu1 = mu2 + 1.0
    if mu2 <= 1.0:
        return indep
    eps1, eps2 = mu1 / sigma**2, mu2 / sigma**2
    cond = (mu2 - 1) * eps2 - mu2 * (math.log(mu1 / (mu1 - 1)) + math.log(mu2 / (mu2 - 1)))
    if logq > cond or logq + eps2 >= 0:
        return indep
    log1q = math.log1p(-math.exp(logq))
    log_a = log1q - math.log1p(-math.exp((mu2 - 1) / mu2 * (logq + eps2)))
    log_b = eps1 - logq / (mu1 - 1)
    out = indep.copy()
    ok = (orders <= mu1) & (orders > 1)
    lam = orders[ok]
    dep = np.logaddexp(log1q + (lam - 1) * log_a, logq + (lam - 1) * log_b) / (lam - 1)
    out[ok] = np.minimum(indep[ok], np.maximum(dep, 0.0))
    return out


@dataclass(frozen=True)
class PrivacyReport:
    """The privacy spent labelling the student's data."""

    aggregator: str
    epsilon: float  # data-independent: the guarantee
    epsilon_data_dependent: float  # not itself private; see the module docstring
    delta: float
    n_queries: int  # records submitted to the aggregator (threshold checks included)
    n_answered: int  # records that got a label
    label_agreement: float  # answered labels equal to the teachers' plurality
    n_student_records: int  # public records the student was fitted on (answered + spread)


@DEFENCES.register("pate")
class PATE(Defence):
    """Teachers on disjoint partitions, noisy aggregation, a student on public data; see the
    module docstring. ``fit(X, y, X_public=...)``: ``X, y`` are the sensitive data; without
    ``X_public`` a share ``public_share`` of ``X`` is set aside and its labels are dropped (a
    simulation; in production pass real non-sensitive data). The student is a clone of
    ``student`` (default: of ``estimator``) trained on the answered records and, semi-supervised,
    on the other public records; ``privacy_`` holds the :class:`PrivacyReport` and ``queried_``
    the indices of the public records submitted to the aggregator and ``n_teachers_`` the number
    of teachers trained. The defaults (GNMax, sigma 20, 40 answers; 50 teachers where the data
    allow 30 records each) spend epsilon 1.91 at delta 1e-5 (data-independent).
    """

    countermeasure: ClassVar[str] = "pate"
    counters: ClassVar[frozenset[str]] = frozenset({"infer_training_data"})
    stage: ClassVar[str] = "training"
    summary: ClassVar[str] = "PATE: noisy teacher-ensemble labels for a student, with DP accounting"
    rank: ClassVar[int] = 0  # tried first among the DP trainings of countermeasure 'pate'
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "n_teachers": [Int(1), OneOf(("auto",))], "aggregator": [OneOf(AGGREGATORS)],
        "noise": [Float(0.0, closed_lo=False)], "threshold": [Float(0.0)],
        "threshold_noise": [Float(0.0, closed_lo=False)], "max_queries": [Int(1)],
        "public_share": [Float(0.0, 1.0, closed_lo=False)],
        "query_selection": [OneOf(SELECTIONS)], "semi_supervised": [OneOf(SEMI_SUPERVISED)],
        "teacher_spreading": [Bool()], "balanced_votes": [Bool()],
        "margin": [Float(0.0, closed_lo=False)], "teacher_records": [Int(1)],
        "delta": [Float(0.0, 1.0, closed_lo=False)],
        "random_state": [Int(0), None],
    }
    #: what the scan sets for a model's input kind: on tabular records one random member of each
    #: cluster (the centres are typical, majority-class records), on images :data:`IMAGE_PARAMS`
    input_params: ClassVar[dict[str, dict[str, Any]]] = {
        "tabular": {"query_selection": "stratified"}, "image": IMAGE_PARAMS}
    _fast_params: ClassVar[dict[str, Any]] = {"n_teachers": 10, "max_queries": 60}
    #: scikit-learn's checks fit on a few dozen records: few teachers, little noise
    _sklearn_check_params: ClassVar[dict[str, Any]] = {"n_teachers": 3, "noise": 0.3}

    def __init__(self, estimator: Any = None, *, student: Any = None,
                 n_teachers: int | str = "auto",
                 aggregator: str = "gnmax", noise: float = 20.0, threshold: float = 0.0,
                 threshold_noise: float = 50.0, max_queries: int = 40,
                 public_share: float = 0.3, query_selection: str = "cluster",
                 semi_supervised: str = "label_spreading", teacher_spreading: bool = False,
                 balanced_votes: bool = True, margin: float = MARGIN_NOISE,
                 teacher_records: int = MIN_PART, delta: float = 1e-5,
                 random_state: int | None = None) -> None:
        self.estimator = estimator
        self.student = student
        self.n_teachers = n_teachers
        self.aggregator = aggregator
        self.noise = noise
        self.threshold = threshold
        self.threshold_noise = threshold_noise
        self.max_queries = max_queries
        self.public_share = public_share
        self.query_selection = query_selection
        self.semi_supervised = semi_supervised
        self.teacher_spreading = teacher_spreading
        self.balanced_votes = balanced_votes
        self.margin = margin
        self.teacher_records = teacher_records
        self.delta = delta
        self.random_state = random_state

    def fit_cost(self) -> float:
        """One fit a teacher (each on its part of the data; with ``"auto"`` the most teachers
        any data size gives) and the student."""
        return float(self.teacher_count(10**9) + 1)

    def _fit(self, X: Any, y: Any, X_public: Any = None) -> None:
        _orders()  # before any teacher is trained: without dp-accounting, fail here
        if y is None:
            raise ValueError("PATE requires y to be passed, but the target y is None")
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            from sklearn.exceptions import DataConversionWarning

            warnings.warn("A column-vector y was passed when a 1d array was expected",
                          DataConversionWarning, stacklevel=2)
            y = y.ravel()
        check_classification_targets(y)
        base = self.estimator if self.estimator is not None else LogisticRegression(max_iter=500)
        if not hasattr(X, "iloc"):
            X = check_array(X, accept_sparse="csr",
                            ensure_all_finite=not get_tags(base).input_tags.allow_nan)
        check_consistent_length(X, y)
        rng = np.random.default_rng(self.random_state)
        self.classes_, yi = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"PATE needs at least 2 classes in y; got 1 class "
                             f"({self.classes_[0]!r})")
        if X_public is None:
            order = rng.permutation(len(y))
            n_pub = max(int(round(self.public_share * len(y))), 1)
            pub, priv = np.sort(order[:n_pub]), np.sort(order[n_pub:])
            X_public = _safe_indexing(X, pub)
            X, yi = _safe_indexing(X, priv), yi[priv]
        n_teachers = self.teacher_count(len(yi))
        if len(yi) < n_teachers:
            raise DataError(f"PATE needs at least one sensitive record per teacher: "
                            f"{len(yi)} records for n_teachers={n_teachers}")
        self.n_teachers_ = n_teachers
        parts = np.array_split(rng.permutation(len(yi)), n_teachers)
        n_pub = X_public.shape[0] if hasattr(X_public, "shape") else len(X_public)
        if n_pub < 1:
            raise DataError("PATE needs at least one public record to label")
        student = self.student if self.student is not None else base
        viewer, view = None, None
        if (self.query_selection != "random" or self.semi_supervised == "label_spreading"
                or self.teacher_spreading):
            viewer = _View(student, rng).fit(X_public)
            view = viewer.transform(X_public)
        # the teachers are independent: tasks of their own where the executor spreads them
        self.teachers_ = task_map(_teacher, parts, (X, yi, base, viewer, view,
                                                    self.teacher_spreading,
                                                    self.balanced_votes))
        if self.query_selection in ("cluster", "stratified"):
            assert view is not None  # built above whenever the selection clusters
            ask = _cluster_queries(view, min(self.max_queries, n_pub), rng,
                                   centre=self.query_selection == "cluster")
        else:
            ask = np.sort(rng.permutation(n_pub)[: self.max_queries])
        self.queried_ = ask  # indices into the public records, chosen without sensitive data
        votes = self.votes(_safe_indexing(X_public, ask))
        labels, answered, n_checked, rdp_dep = self._aggregate(votes, rng)
        plurality = votes.argmax(axis=1)
        agreement = (float(np.mean(labels[answered] == plurality[answered]))
                     if answered.any() else float("nan"))
        if not answered.any():
            self.privacy_ = self._account(n_checked, 0, rdp_dep, agreement, 0)
            raise DataError("no query passed the confident-GNMax threshold; lower 'threshold' "
                            "or raise 'max_queries'")
        known = np.full(n_pub, -1)
        known[ask[answered]] = labels[answered]
        self.student_, n_fit = self._fit_student(student, X_public, known, view, rng)
        self.privacy_ = self._account(n_checked, int(answered.sum()), rdp_dep, agreement, n_fit)
        for attr in ("n_features_in_", "feature_names_in_"):
            if hasattr(self.student_, attr):
                setattr(self, attr, getattr(self.student_, attr))
        if not hasattr(self, "n_features_in_") and hasattr(X, "shape"):
            self.n_features_in_ = X.shape[1]

    def teacher_count(self, n_sensitive: int) -> int:
        """The number of teachers: ``n_teachers``, or for ``"auto"`` the fewest whose unanimous
        vote stands ``margin`` noise standard deviations clear of the other class
        (``ceil(2.5 sigma)``: 50 at sigma 20), but no more than one per ``teacher_records``
        sensitive records (a model of a few records votes the majority class; at least one
        teacher)."""
        if self.n_teachers != "auto":
            return int(self.n_teachers)
        sd = self.noise * (math.sqrt(2.0) if self.aggregator == "laplace" else 1.0)
        return max(1, min(math.ceil(self.margin * sd), n_sensitive // self.teacher_records))

    def _fit_student(self, student: Any, X_public: Any, known: np.ndarray,
                     view: np.ndarray | None, rng: np.random.Generator) -> tuple[Any, int]:
        """The student fitted on the public records; ``known`` holds the answered labels (class
        indices) and -1 elsewhere. Returns the student and the number of records it learned."""
        lab = np.flatnonzero(known >= 0)
        if self.semi_supervised == "label_spreading" and len(np.unique(known[lab])) > 1:
            assert view is not None
            k = min(SPREAD_NEIGHBOURS, len(known) - 1)
            spread = LabelSpreading(kernel="knn", n_neighbors=k, alpha=SPREAD_ALPHA,
                                    max_iter=100)
            with _quiet(), np.errstate(invalid="ignore", divide="ignore"):
                spread.fit(view, known)
            dist = np.asarray(spread.label_distributions_)
            # records no answer reaches (a part of the k-NN graph without one) are left out
            reached = np.isfinite(dist).all(axis=1) & (np.nan_to_num(dist).sum(axis=1) > 0)
            reached[lab] = True
            y_all = np.asarray(spread.transduction_).astype(int)
            y_all[lab] = known[lab]  # the answers themselves are kept as given
            keep = np.flatnonzero(reached)
            if len(np.unique(y_all[keep])) == 1:
                return _Constant(int(y_all[keep[0]])), len(keep)
            return clone(student).fit(_safe_indexing(X_public, keep), y_all[keep]), len(keep)
        if self.semi_supervised == "self_training" and len(np.unique(known[lab])) > 1:
            # around the final step of a Pipeline, so that its preprocessing sees raw records
            if isinstance(student, Pipeline) and len(student.steps) > 1:
                name, last = student.steps[-1]
                st: Any = Pipeline([*clone(student).steps[:-1],
                                    (name, SelfTrainingClassifier(clone(last), threshold=0.9))])
            else:
                st = SelfTrainingClassifier(clone(student), threshold=0.9)
            with _quiet():
                st.fit(X_public, known)
            inner = st[-1] if isinstance(st, Pipeline) else st
            return st, int(np.sum(np.asarray(inner.labeled_iter_) >= 0))
        X_lab, y_lab = _safe_indexing(X_public, lab), known[lab]
        if len(np.unique(y_lab)) == 1:
            return _Constant(int(y_lab[0])), len(lab)
        return clone(student).fit(X_lab, y_lab), len(lab)

    def votes(self, X: Any) -> np.ndarray:
        """The teachers' vote histogram per record (n_records x n_classes)."""
        counts = np.zeros((X.shape[0] if hasattr(X, "shape") else len(X), len(self.classes_)))
        for t in self.teachers_:
            pred = np.asarray(t.predict(X)).astype(int)
            counts[np.arange(len(pred)), pred] += 1
        return counts

    def _aggregate(self, votes: np.ndarray, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray, int, np.ndarray]:
        n, k = votes.shape
        answered = np.ones(n, dtype=bool)
        if self.aggregator == "confident_gnmax":
            noisy_top = votes.max(axis=1) + rng.normal(0.0, self.threshold_noise, size=n)
            answered = noisy_top >= self.threshold
        if self.aggregator == "laplace":
            noisy = votes + rng.laplace(0.0, self.noise, size=(n, k))
        else:
            noisy = votes + rng.normal(0.0, self.noise, size=(n, k))
        labels = noisy.argmax(axis=1)
        orders = _orders()
        rdp_dep = np.zeros_like(orders)
        if self.aggregator != "laplace":
            for i in np.flatnonzero(answered):
                rdp_dep += rdp_gnmax_data_dependent(log_q_gnmax(votes[i], self.noise),
                                                    self.noise, orders)
        return labels, answered, n, rdp_dep

    def _account(self, n_checked: int, n_answered: int, rdp_dep: np.ndarray,
                 agreement: float, n_student: int) -> PrivacyReport:
        dp, rdp, orders = _dp(), _dp(RDP), _orders()
        acc = rdp.RdpAccountant(list(orders))
        if n_answered == 0:
            pass
        elif self.aggregator == "laplace":
            acc.compose(dp.SelfComposedDpEvent(dp.LaplaceDpEvent(self.noise / 2.0), n_answered))
        else:
            acc.compose(dp.SelfComposedDpEvent(dp.GaussianDpEvent(self.noise / math.sqrt(2.0)),
                                               n_answered))
        check_rdp = np.zeros_like(orders)
        if self.aggregator == "confident_gnmax":
            acc.compose(dp.SelfComposedDpEvent(dp.GaussianDpEvent(self.threshold_noise),
                                               n_checked))
            check_rdp = n_checked * orders / (2.0 * self.threshold_noise**2)
        eps = float(acc.get_epsilon(self.delta))
        if self.aggregator == "laplace":
            eps_dep = eps
        else:
            eps_dep = min(eps, float(rdp.compute_epsilon(orders, rdp_dep + check_rdp, self.delta)[0]))
        return PrivacyReport(self.aggregator, eps, eps_dep, self.delta, n_checked, n_answered,
                             agreement, n_student)

    def _input(self, X: Any) -> Any:
        check_is_fitted(self, "student_")
        if hasattr(X, "iloc"):
            return X
        base = self.estimator if self.estimator is not None else LogisticRegression()
        return check_array(X, accept_sparse="csr",
                           ensure_all_finite=not get_tags(base).input_tags.allow_nan)

    def predict(self, X: Any) -> np.ndarray:
        X = self._input(X)
        return self.classes_[np.asarray(self.student_.predict(X)).astype(int)]

    def predict_proba(self, X: Any) -> np.ndarray:
        X = self._input(X)
        p = np.asarray(self.student_.predict_proba(X))
        out = np.zeros((p.shape[0], len(self.classes_)))
        out[:, np.asarray(self.student_.classes_).astype(int)] = p
        return out


def _teacher(shared: tuple[Any, ...], part: np.ndarray) -> Any:
    """The teacher of one disjoint part of the sensitive records (a piece of :class:`PATE`)."""
    X, yi, base, viewer, view, spreading, balanced = shared
    rows, labels = _safe_indexing(X, part), yi[part]
    if len(np.unique(labels)) == 1:
        return _Constant(int(labels[0]))
    if spreading:
        assert viewer is not None and view is not None
        return _SpreadTeacher(viewer, view, rows, labels)
    model = clone(base).fit(rows, labels)
    if balanced and hasattr(model, "predict_proba"):
        return _Balanced(model, rows)
    return model


class _Balanced:
    """A teacher voting for the class whose predicted probability most exceeds its usual level
    (``argmax p(c|x) / prior(c)``, the prior the model's mean probability over its own
    partition): on imbalanced data a small partition's model gives the majority class to nearly
    every record, so the plurality carries no ranking; relative to its prior, a teacher votes
    'riskier than usual'. A model already trained class-balanced (``class_weight``) has a prior
    near uniform and votes as it is. The prior comes from the teacher's own partition, so one
    sensitive record still changes one vote only."""

    def __init__(self, model: Any, rows: Any) -> None:
        self.model = model
        self.classes_ = np.asarray(model.classes_).astype(int)
        self.prior = np.asarray(model.predict_proba(rows)).mean(axis=0).clip(1e-6, None)

    def predict(self, X: Any) -> np.ndarray:
        p = np.asarray(self.model.predict_proba(X)) / self.prior
        return self.classes_[np.argmax(p, axis=1)]

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.asarray(self.model.predict_proba(X))


class _View:
    """Records as a dense numeric array: the student pipeline's preprocessing, then PCA to
    ``VIEW_DIMS`` components above that width, both fitted on the public records only (no
    labels, no sensitive data)."""

    def __init__(self, student: Any, rng: np.random.Generator) -> None:
        # a model the scan trains "like the deployed one" may come wrapped (AsTrained: the
        # columns in their trained dtypes, the class names); the view is its pipeline's
        self.cast = None
        if not isinstance(student, Pipeline) and isinstance(
                getattr(student, "estimator", None), Pipeline) and hasattr(student, "_x"):
            self.cast, student = student, student.estimator
        self.prep = (clone(Pipeline(student.steps[:-1]))
                     if isinstance(student, Pipeline) and len(student.steps) > 1 else None)
        self.rng = rng
        self.pca: PCA | None = None

    def _numeric(self, X: Any, fit: bool) -> np.ndarray:
        Z = self.cast._x(X) if self.cast is not None else X
        if self.prep is not None:
            try:
                Z = self.prep.fit_transform(Z) if fit else self.prep.transform(Z)
            except (TypeError, ValueError) as e:
                raise DataError(f"PATE fits the student's preprocessing on the public records "
                                f"without labels to select queries and spread labels, and it "
                                f"failed ({e}); use query_selection='random', "
                                f"semi_supervised='none' or 'self_training' and "
                                f"teacher_spreading=False") from e
        if hasattr(Z, "toarray"):
            Z = Z.toarray()
        try:
            return check_array(Z, dtype=np.float64)
        except ValueError as e:
            raise DataError(f"PATE needs numeric public records (or a student Pipeline whose "
                            f"preprocessing makes them numeric) to select queries and spread "
                            f"labels: {e}") from e

    def fit(self, X: Any) -> _View:
        Z = self._numeric(X, fit=True)
        # columns on wildly different scales are put on one: a preprocessing without scaling
        # (a tree pipeline's imputation and one-hot) leaves amounts in the thousands beside 0/1
        # indicators, and the k-NN graph and the clusters would follow the amounts alone.
        # Columns already on comparable scales (pixels, standardised fields) are left as they
        # are: standardising them would blow up the nearly constant ones.
        sd = Z.std(axis=0)
        live = sd[sd > 0]
        uneven = live.size > 1 and float(live.max()) > SCALE_SPREAD * float(np.median(live))
        self.mean_ = Z.mean(axis=0) if uneven else np.zeros(Z.shape[1])
        self.scale_ = np.where(sd > 0, sd, 1.0) if uneven else np.ones(Z.shape[1])
        Z = (Z - self.mean_) / self.scale_
        if Z.shape[1] > VIEW_DIMS and Z.shape[0] > VIEW_DIMS:
            with threadpool_limits(limits=1):  # as the queries' k-means: the same on any machine
                self.pca = PCA(VIEW_DIMS,
                               random_state=int(self.rng.integers(2**31 - 1))).fit(Z)
        return self

    def transform(self, X: Any) -> np.ndarray:
        Z = (self._numeric(X, fit=False) - self.mean_) / self.scale_
        return self.pca.transform(Z) if self.pca is not None else Z


class _SpreadTeacher:
    """A teacher that spreads its own partition's labels over the public records (k-NN label
    spreading in the public view) and predicts from the spread labels. It sees no other
    sensitive record, so one sensitive record still changes one teacher only."""

    def __init__(self, viewer: _View, public_view: np.ndarray, rows: Any,
                 labels: np.ndarray) -> None:
        self.viewer = viewer
        self.own, self.own_labels = viewer.transform(rows), labels
        Z = np.vstack([self.own, public_view])
        y = np.concatenate([labels, np.full(len(public_view), -1)])
        k = min(SPREAD_NEIGHBOURS, len(Z) - 1)
        with _quiet():
            self.model = LabelSpreading(kernel="knn", n_neighbors=k, alpha=SPREAD_ALPHA,
                                        max_iter=100).fit(Z, y)
        self.classes_ = self.model.classes_

    def predict(self, X: Any) -> np.ndarray:
        """The spread label; where none of the partition's labels reaches (a part of the k-NN
        graph without them), the label of the nearest record of the partition."""
        Z = self.viewer.transform(X)
        with np.errstate(invalid="ignore", divide="ignore"):
            p = np.asarray(self.model.predict_proba(Z))
        ok = np.isfinite(p).all(axis=1) & (np.nan_to_num(p).sum(axis=1) > 0)
        out = np.empty(len(p), dtype=int)
        out[ok] = np.asarray(self.classes_)[np.argmax(p[ok], axis=1)]
        if (~ok).any():
            d2 = ((Z[~ok, None, :] - self.own[None, :, :]) ** 2).sum(axis=2)
            out[~ok] = self.own_labels[np.argmin(d2, axis=1)]
        return out


def _cluster_queries(view: np.ndarray, n: int, rng: np.random.Generator,
                     centre: bool = True) -> np.ndarray:
    """k-means with ``n`` clusters on the public records: the indices (sorted) of one record of
    each cluster, so that the labelled records cover the data's modes: the record nearest its
    centre (``centre``) or a random member (a sample stratified by cluster)."""
    if n >= len(view):
        return np.arange(len(view))
    # one thread: k-means' result depends on how its sums are split among threads, so the
    # queries (and the student) would differ from one machine, executor or worker to another
    with _quiet(), threadpool_limits(limits=1):
        km = KMeans(n, n_init=1, random_state=int(rng.integers(2**31 - 1))).fit(view)
    groups = np.asarray(km.labels_)
    d2 = ((view - km.cluster_centers_[groups]) ** 2).sum(axis=1)
    members = [m for j in range(n) if len(m := np.flatnonzero(groups == j))]
    picked = [int(m[np.argmin(d2[m])]) if centre else int(rng.choice(m)) for m in members]
    return np.sort(np.asarray(picked))


@contextmanager
def _quiet() -> Iterator[None]:
    """Silences scikit-learn's convergence warnings of the semi-supervised helpers."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


class _Constant:
    """A teacher (or student) whose partition held a single class."""

    def __init__(self, label: int) -> None:
        self.label = label
        self.classes_ = np.array([label])

    def predict(self, X: Any) -> np.ndarray:
        return np.full(X.shape[0] if hasattr(X, "shape") else len(X), self.label)

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.ones((X.shape[0] if hasattr(X, "shape") else len(X), 1))
