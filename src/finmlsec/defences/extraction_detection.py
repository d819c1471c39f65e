"""Model-extraction detection on a client's query stream, after PRADA (Juuti et al. 2019).

For each client, and for each class the model predicted, PRADA keeps a growing set of that client's
earlier queries. Each new query's minimum distance to the growing set of its predicted class is
appended to the client's distance list ``D``; the query joins the growing set when that distance
exceeds the class threshold (mean minus standard deviation of the distances that admitted earlier
members). Queries of real users are spread like the data, so ``D`` looks roughly normal;
synthetic extraction queries (random probes, one-feature-at-a-time variations, line searches
towards the decision boundary) give many tiny or strangely spread distances. Once ``D`` holds
``min_queries`` values, a Shapiro-Wilk statistic ``W`` below ``threshold`` flags the client.

PRADA alone misses extraction queries whose distances happen to look normal (a boundary search
that walks between random valid records, for instance). With ``max_far_rate`` and reference
records (the training data, :meth:`PradaDetector.fit_reference`), the detector also flags a client
when more than that fraction of its queries lie farther from every reference record than almost
all reference records lie from each other (the ``far_quantile`` of their leave-one-out
nearest-neighbour distances): real applicants resemble earlier applicants, synthetic probes do
not. This second signal is ours, in the spirit of Kesarwani et al.'s (2018) monitoring of how much
of the input space a client covers; it assumes the served population resembles the training data.

Distances are taken in a normalised space built from the feature schema (:class:`SchemaEncoder`):
numeric fields scaled to [0, 1] by their range, one categorical change counting 1.

Registered with the countermeasure ``gateway_rate_limiting``: PRADA acts where the gateway's rate
limits act, on a client's stream of queries (throttle or block the client), not on any single
input, which on its own looks benign; ``detect_malicious_input`` in the catalogue removes
individual adversarial inputs, which is a different job.

Example:
    >>> import numpy as np
    >>> det = PradaDetector(min_queries=40)
    >>> rng = np.random.default_rng(0)
    >>> benign = det.new_state()
    >>> det.observe(benign, rng.normal(size=(120, 5)), np.zeros(120, dtype=int)).flagged
    False
    >>> probe = det.new_state()   # one base point, then one feature moved at a time
    >>> base = rng.normal(size=5)
    >>> X = np.repeat(base[None, :], 120, axis=0)
    >>> X[np.arange(120), np.arange(120) % 5] += rng.choice([1e-3, 1.0], size=120)
    >>> det.observe(probe, X, np.zeros(120, dtype=int)).flagged
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from finmlsec.datasets.schema_infer import infer_schema
from finmlsec.defences._params import Float, Int, OneOf
from finmlsec.defences.guards import GUARDS, Guard
from finmlsec.errors import BudgetExceededError, DataError
from finmlsec.schema import FeatureSchema, FeatureType


class SchemaEncoder:
    """Records -> points of a normalised space where PRADA measures distances.

    Example:
        >>> from finmlsec.schema import Feature
        >>> s = FeatureSchema(features=(Feature(name="age", type="integer", min=20, max=70),
        ...                             Feature(name="job", type="categorical", categories=("a", "b"))))
        >>> SchemaEncoder(s).encode_records([{"age": 45, "job": "b"}]).round(3).tolist()
        [[0.5, 0.0, 0.707]]
    """

    def __init__(self, schema: FeatureSchema) -> None:
        self.schema = schema
        self._plan: list[tuple[str, str, Any]] = []
        width = 0
        for f in schema.features:
            if f.type == FeatureType.CATEGORICAL:
                cats = {c: width + i for i, c in enumerate(f.categories or ())}
                self._plan.append((f.name, "cat", cats))
                width += len(cats)
            elif f.is_numeric:
                lo = 0.0 if f.min is None else float(f.min)
                span = 1.0 if f.min is None or f.max is None or f.max == f.min else f.max - f.min
                self._plan.append((f.name, "num", (width, lo, float(span))))
                width += 1
            else:
                raise DataError(
                    f"extraction detection measures distances between tabular records; feature "
                    f"{f.name!r} has type {f.type.value}; leave it out of the schema or disable "
                    "extraction detection"
                )
        self.width = width

    def encode_records(self, records: list[dict[str, Any]]) -> np.ndarray:
        """Encode validated records (dicts keyed by feature name)."""
        out = np.zeros((len(records), self.width))
        half = 0.5**0.5
        for i, rec in enumerate(records):
            row = out[i]
            for name, kind, info in self._plan:
                v = rec.get(name)
                if v is None:
                    continue
                if kind == "cat":
                    j = info.get(str(v))
                    if j is not None:
                        row[j] = half
                else:
                    col, lo, span = info
                    row[col] = (float(v) - lo) / span
        return out

    def encode_frame(self, X: pd.DataFrame) -> np.ndarray:
        """Encode a DataFrame with the schema's columns."""
        out = np.zeros((len(X), self.width))
        half = 0.5**0.5
        for name, kind, info in self._plan:
            col = X[name]
            if kind == "cat":
                for cat, j in info.items():
                    out[:, j] = np.where(col.astype(str).to_numpy() == cat, half, 0.0)
            else:
                c, lo, span = info
                out[:, c] = (pd.to_numeric(col, errors="coerce").fillna(lo).to_numpy(float) - lo) / span
        return out


@dataclass
class PradaState:
    """One client's PRADA state: growing sets per class, distance list, flag."""

    growing: dict[int, np.ndarray] = field(default_factory=dict)
    sizes: dict[int, int] = field(default_factory=dict)
    inserted: dict[int, int] = field(default_factory=dict)  # members ever stored, per class
    admitted: dict[int, list[float]] = field(default_factory=dict)  # [count, sum, sum of squares]
    distances: list[float] = field(default_factory=list)
    queries: int = 0
    last_w: float | None = None
    thresholds: dict[int, float] = field(default_factory=dict)
    far: int = 0
    flagged: bool = False
    flagged_at: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class PradaVerdict:
    """After observing some queries: is the client flagged, its latest W, queries seen."""

    flagged: bool
    w: float | None
    queries: int
    newly_flagged: bool = False
    far_rate: float | None = None
    reason: str | None = None


@GUARDS.register("detection.prada")
class PradaDetector(Guard):
    """PRADA: flag a client whose minimum-distance distribution is not normal.

    ``threshold``: Shapiro-Wilk W below which a client is flagged; ``min_queries``: distances
    needed before testing; ``check_every``: test every so many new distances; ``window``: test the
    latest so many distances; ``max_stored``: cap on each growing set (oldest kept);
    ``action``: what the gateway does with a flagged client (``block`` or ``throttle``).

    The defaults were tuned on the credit-scoring model: over 300 clients each replaying the
    300 held-out German Credit records in a random order, the lowest W seen after 100 queries was
    0.83, while one-feature-at-a-time probing (Tramer et al.) gives W of 0.71-0.77 at 100
    queries. Tune ``threshold`` on your own clients' streams (Juuti et al. tune it per model), or
    let :meth:`calibrate` set it from reference data (the gateway does so at start-up).
    """

    countermeasure: ClassVar[str] = "gateway_rate_limiting"
    counters: ClassVar[frozenset[str]] = frozenset({"infer_model"})
    stage: ClassVar[str] = "gateway"
    summary: ClassVar[str] = "PRADA: flag clients whose query distances are not normally distributed"
    scanned: ClassVar[bool] = True
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "threshold": [Float(0.0, 1.0, closed_lo=False)], "min_queries": [Int(3, 5000)],
        "check_every": [Int(1)], "window": [Int(3, 5000)], "max_stored": [Int(1)],
        "action": [OneOf(("block", "throttle"))],
        "max_far_rate": [Float(0.0, 1.0, closed_lo=False), None],
        "far_quantile": [Float(0.5, 1.0, closed_lo=False)],
    }

    def __init__(
        self,
        *,
        threshold: float = 0.82,
        min_queries: int = 100,
        check_every: int = 10,
        window: int = 2000,
        max_stored: int = 1000,
        action: str = "block",
        max_far_rate: float | None = None,
        far_quantile: float = 0.99,
    ) -> None:
        self.max_far_rate = max_far_rate
        self.far_quantile = far_quantile
        self.threshold = threshold
        self.min_queries = min_queries
        self.check_every = check_every
        self.window = window
        self.max_stored = max_stored
        self.action = action

    def fit_reference(self, E: np.ndarray) -> PradaDetector:
        """Remember encoded reference records (the training data) for the far-query rate: a
        query is *far* when its distance to the nearest reference record exceeds the
        ``far_quantile`` of the reference records' leave-one-out nearest-neighbour distances."""
        E = np.asarray(E, dtype=float)
        if len(E) < 10:
            raise DataError(f"the far-query rate needs at least 10 reference records; got {len(E)}")
        self.reference_ = E
        self._ref_sq = np.einsum("ij,ij->i", E, E)
        d = self._nearest(E, exclude_self=True)
        self.far_distance_ = float(np.quantile(d, self.far_quantile))
        return self

    def genuine_w(self, E: np.ndarray, labels: np.ndarray, *, streams: int = 200,
                  length: int = 300, seed: int = 0, contiguous: bool = True) -> np.ndarray:
        """The lowest W each simulated genuine client would reach: ``streams`` streams of
        ``length`` encoded reference records ``E`` (with the model's predicted class indices
        ``labels``), half drawn at random without replacement, half (with ``contiguous``)
        contiguous runs in the data's own order (clients replaying consecutive records of a
        time series), each fed to
        a fresh state of this detector with its ``min_queries``/``check_every``/``window``.
        Streams never flagged at this detector's settings contribute their minimum W all the
        same (the threshold is ignored here)."""
        E = np.asarray(E, dtype=float)
        labels = np.asarray(labels)
        n = len(E)
        length = min(int(length), n)
        if length <= self.min_queries + 1:
            raise DataError(
                f"calibrating PRADA needs more than {self.min_queries + 1} reference records; "
                f"got {n}"
            )
        rng = np.random.default_rng(seed)
        probe = PradaDetector(threshold=1e-12, min_queries=self.min_queries,
                              check_every=self.check_every, window=self.window,
                              max_stored=self.max_stored)
        out = np.empty(streams)
        for k in range(streams):
            if k % 2 == 0 or not contiguous:
                idx = rng.choice(n, size=length, replace=False)
            else:
                start = int(rng.integers(0, n - length + 1))
                idx = np.arange(start, start + length)
            out[k] = probe._min_w(E[idx], labels[idx])
        return out

    def _min_w(self, X: np.ndarray, labels: np.ndarray) -> float:
        """The lowest W over the checks of one stream (1.0 when none ran)."""
        lowest = 1.0
        state = self.new_state()
        step = self.check_every
        for s in range(0, len(X), step):
            self.observe(state, X[s:s + step], labels[s:s + step])
            if state.last_w is not None:
                lowest = min(lowest, state.last_w)
        return lowest

    def calibrate(self, E: np.ndarray, labels: np.ndarray, *,
                  target_false_block_rate: float = 0.01, margin: float = 0.02,
                  cap: float = 0.82, streams: int = 200, length: int = 300,
                  seed: int = 0, contiguous: bool = True) -> float:
        """Set ``threshold`` from simulated genuine clients (:meth:`genuine_w`): the
        ``target_false_block_rate`` quantile of their lowest W, minus ``margin``, never above
        ``cap``. Returns the threshold; ``calibration_`` keeps what it was derived from."""
        w = self.genuine_w(E, labels, streams=streams, length=length, seed=seed,
                           contiguous=contiguous)
        q = float(np.quantile(w, target_false_block_rate))
        self.threshold = float(min(cap, max(q - margin, 1e-6)))
        self.calibration_ = {
            "threshold": round(self.threshold, 4), "genuine_w_quantile": round(q, 4),
            "target_false_block_rate": target_false_block_rate, "margin": margin, "cap": cap,
            "streams": streams, "length": min(length, len(E)), "seed": seed,
            "contiguous": contiguous,
            "genuine_w_min": round(float(w.min()), 4),
            "genuine_w_median": round(float(np.median(w)), 4),
        }
        return self.threshold

    def _nearest(self, X: np.ndarray, *, exclude_self: bool = False) -> np.ndarray:
        out = np.empty(len(X))
        for s in range(0, len(X), 512):
            B = X[s:s + 512]
            d2 = np.einsum("ij,ij->i", B, B)[:, None] + self._ref_sq[None, :] - 2 * B @ self.reference_.T
            if exclude_self:
                d2[np.arange(len(B)), np.arange(s, s + len(B))] = np.inf
            out[s:s + 512] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
        return out

    def new_state(self) -> PradaState:
        return PradaState()

    def far_mask(self, X: np.ndarray) -> np.ndarray:
        """Which encoded queries are far from every reference record (all False without
        ``max_far_rate`` or reference data)."""
        X = np.asarray(X, dtype=float)
        if self.max_far_rate is None or not hasattr(self, "reference_") or not len(X):
            return np.zeros(len(X), dtype=bool)
        return self._nearest(X) > self.far_distance_

    def observe(self, state: PradaState, X: np.ndarray, labels: np.ndarray,
                far: np.ndarray | None = None) -> PradaVerdict:
        """Feed encoded queries ``X`` (in arrival order) with their predicted class indices;
        ``far`` may give :meth:`far_mask` precomputed."""
        from scipy.stats import shapiro

        was = state.flagged
        X = np.asarray(X, dtype=float)
        labels = np.asarray(labels)
        use_far = self.max_far_rate is not None and hasattr(self, "reference_")
        if use_far and far is None:
            far = self.far_mask(X)
        if not use_far:
            far = None
        for pos, (x, c) in enumerate(zip(X, labels, strict=True)):
            if far is not None and far[pos]:
                state.far += 1
            c = int(c)
            state.queries += 1
            n = state.sizes.get(c, 0)
            if n == 0:
                state.growing[c] = np.empty((min(64, self.max_stored), X.shape[1]))
                state.growing[c][0] = x
                state.sizes[c] = 1
                state.admitted[c] = [0.0, 0.0, 0.0]
                continue
            G = state.growing[c][:n]
            diff = G - x
            d = float(np.sqrt(np.min(np.einsum("ij,ij->i", diff, diff))))
            state.distances.append(d)
            adm = state.admitted[c]
            if d > state.thresholds.get(c, 0.0):
                adm[0] += 1.0
                adm[1] += d
                adm[2] += d * d
                self._admit(state, c, x)
                mean = adm[1] / adm[0]
                std = max(adm[2] / adm[0] - mean * mean, 0.0) ** 0.5
                state.thresholds[c] = max(state.thresholds.get(c, 0.0), mean - std)
            k = len(state.distances)
            if not state.flagged and k >= self.min_queries and (
                k == self.min_queries or k % self.check_every == 0
            ):
                D = np.asarray(state.distances[-self.window:])
                w = 0.0 if np.ptp(D) == 0 else float(shapiro(D).statistic)
                state.last_w = w
                if w < self.threshold:
                    state.flagged, state.flagged_at, state.reason = True, state.queries, "prada"
                elif far is not None and state.far > (self.max_far_rate or 1.0) * state.queries:
                    state.flagged, state.flagged_at, state.reason = True, state.queries, "far"
            if len(state.distances) > 2 * self.window:
                del state.distances[: -self.window]
        rate = state.far / state.queries if use_far and state.queries else None
        return PradaVerdict(state.flagged, state.last_w, state.queries, state.flagged and not was,
                            rate, state.reason)

    def _admit(self, state: PradaState, c: int, x: np.ndarray) -> None:
        n = state.sizes[c]
        G = state.growing[c]
        total = state.inserted.get(c, n)
        state.inserted[c] = total + 1
        if n >= self.max_stored:
            G[total % self.max_stored] = x  # ring buffer: the oldest member makes way
            return
        if n >= len(G):
            bigger = np.empty((min(2 * len(G), self.max_stored), G.shape[1]))
            bigger[:n] = G[:n]
            state.growing[c] = G = bigger
        G[n] = x
        state.sizes[c] = n + 1

    def wrap(self, model: Any, X: Any = None) -> PradaMonitoredEstimator:
        """The fitted ``model`` watched by a fresh copy of this detector, for one client; ``X``
        (the training data) gives the distance space (its schema, for a DataFrame) and, with
        ``max_far_rate``, the reference records."""
        from sklearn.base import clone

        self.validate()
        schema = infer_schema(X).schema if isinstance(X, pd.DataFrame) else None
        monitored = PradaMonitoredEstimator(model, detector=clone(self), schema=schema)
        if self.max_far_rate is not None and X is not None:
            monitored.detector.fit_reference(monitored._encode(X))
        return monitored


class PradaMonitoredEstimator:
    """A fitted classifier whose queries (one client) are watched by PRADA; once the client is
    flagged every further query raises :class:`~finmlsec.errors.BudgetExceededError`.

    Example:
        >>> from sklearn.linear_model import LogisticRegression
        >>> rng = np.random.default_rng(1)
        >>> X = rng.normal(size=(200, 3)); y = (X[:, 0] > 0).astype(int)
        >>> m = PradaDetector(min_queries=30).wrap(LogisticRegression().fit(X, y), X)
        >>> probes = np.zeros((60, 3)); probes[:, 0] = np.linspace(-1e-3, 1e-3, 60)
        >>> _ = m.predict(probes)
        >>> m.flagged
        True
        >>> m.predict(X[:1])
        Traceback (most recent call last):
        ...
        finmlsec.errors.BudgetExceededError: extraction suspected after 31 queries (PRADA W=0.637 < 0.82); this client is blocked
    """

    def __init__(self, estimator: Any, *, detector: PradaDetector,
                 schema: FeatureSchema | None = None) -> None:
        self.estimator = estimator
        self.detector = detector
        self.encoder = SchemaEncoder(schema) if schema is not None else None
        self.classes_ = np.asarray(estimator.classes_)
        self.state = detector.new_state()

    @property
    def flagged(self) -> bool:
        return self.state.flagged

    def _refuse(self) -> None:
        if self.state.flagged:
            why = (f"PRADA W={self.state.last_w:.3f} < {self.detector.threshold}"
                   if self.state.reason == "prada" else "too many queries far from the data")
            raise BudgetExceededError(
                f"extraction suspected after {self.state.flagged_at} queries ({why}); this "
                "client is blocked",
                used=self.state.queries,
            )

    def _encode(self, X: Any) -> np.ndarray:
        if self.encoder is not None and isinstance(X, pd.DataFrame):
            return self.encoder.encode_frame(X)
        return np.asarray(X, dtype=float).reshape(len(X), -1)

    def predict_proba(self, X: Any) -> np.ndarray:
        self._refuse()
        p = np.asarray(self.estimator.predict_proba(X), dtype=float)
        self.detector.observe(self.state, self._encode(X), np.argmax(p, axis=1))
        return p

    def predict(self, X: Any) -> np.ndarray:
        p = self.predict_proba(X)
        return self.classes_[np.argmax(p, axis=1)]
