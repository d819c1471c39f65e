"""The model side of a request: validated records (:class:`Valid`) -> an :class:`Outcome`.

:class:`Predictor` runs the model (through the compiled numpy path of
:mod:`finmlsec.gateway.fastpath` where it was verified equal to the original, else the original
objects on a DataFrame), the guards' output defence and input screen, and prepares what the
extraction detector observes. Small requests go through a :class:`MicroBatcher` (one model call
for whatever is waiting); large ones run alone in the model thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from finmlsec.gateway import fastpath
from finmlsec.gateway.batcher import MicroBatcher
from finmlsec.gateway.guards import Guards
from finmlsec.gateway.validation import Valid
from finmlsec.schema import FeatureSchema
from finmlsec.targets.base import Target


@dataclass(frozen=True)
class Outcome:
    """What the model thread computed for a batch, one row per record: raw probabilities
    (``proba``), the answer after the output defence (``answer``), the input screen's verdict
    (``suspicious``), and for the extraction detector the rows it observes (``seen``; a bounded
    sample of a large request), whether each is far from the training data (``far``) and their
    encodings (``encoded``, None without extraction detection)."""

    proba: np.ndarray
    answer: np.ndarray
    suspicious: np.ndarray
    seen: np.ndarray
    far: np.ndarray
    encoded: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.proba)

    def __getitem__(self, s: slice) -> Outcome:
        """The outcome of the records ``s`` (the micro-batcher hands each request its part)."""
        return Outcome(self.proba[s], self.answer[s], self.suspicious[s], self.seen[s],
                       self.far[s], None if self.encoded is None else self.encoded[s])

    @property
    def observed(self) -> np.ndarray:
        """Positions of the rows the extraction detector sees."""
        return np.flatnonzero(self.seen)


def _scores_model(target: Any) -> Any:
    """The scikit-learn model whose probabilities ``target`` answers (behind the bank's
    cut-off, which changes its decisions, not its probabilities), or None."""
    from finmlsec.targets.cutoff import Thresholded

    est = getattr(target, "estimator", None)
    return est.estimator if isinstance(est, Thresholded) else est


class Predictor:
    """Model, compiled paths and micro-batcher of one process."""

    def __init__(self, target: Target, schema: FeatureSchema, guards: Guards, *,
                 reference: Any = None, max_rows: int = 256, linger: float = 0.0,
                 sample: int = 64) -> None:
        self.target = target
        self.schema = schema
        self.names = schema.names
        self.guards = guards
        self.sample = sample
        screen = guards.screen
        # compiled numpy paths for records (no DataFrame), used only where verified equal
        self.fast_model = fastpath.verified(
            lambda: fastpath.compile_model(_scores_model(target)),
            target.predict_proba, reference, self.names)
        self.fast_screen = None if screen is None else fastpath.verified(
            lambda: fastpath.compile_screen(screen), guards.screen_rows, reference, self.names)
        self.fast = self.fast_model is not None and (screen is None or self.fast_screen is not None)
        self.batcher: MicroBatcher[Valid, Outcome] = MicroBatcher(
            self.predict_batch, max_rows=max_rows, linger=linger)

    def predict_batch(self, parts: list[Valid]) -> Outcome:
        """The outcome of several small validated inputs at once (the micro-batcher's call)."""
        return self.predict(Valid.concat(parts))

    def predict(self, v: Valid, sample: int | None = None) -> Outcome:
        """The outcome of validated records; ``sample`` bounds the rows the extraction detector
        observes (a random subset of a large request)."""
        if self.fast:
            enc = self.guards.encoder
            try:
                return self.predict_columns(
                    v.columns, lambda idx: enc.encode_records([v.record(i) for i in idx]), sample)
            except fastpath.Unsupported:
                pass  # e.g. a null in a nullable field: the original objects handle it
        return self.predict_frame(v.frame(), sample)

    def predict_large(self, v: Valid) -> Outcome:
        """:meth:`predict` for one large request (the detector sees a bounded sample)."""
        return self.predict(v, self.sample)

    def predict_columns(self, columns: fastpath.Columns, encode: Callable[[np.ndarray], Any],
                        sample: int | None = None) -> Outcome:
        """:meth:`predict_frame` through the compiled model and screen; ``encode(idx)`` gives
        the extraction detector's encoding of the rows ``idx``."""
        assert self.fast_model is not None
        P = self.fast_model(columns)
        n = len(P)
        flags = (np.zeros(n, dtype=bool) if self.fast_screen is None
                 else np.asarray(self.fast_screen(columns), dtype=bool))
        return self._outcome(P, np.zeros((n, 1)), flags, encode, sample)

    def predict_frame(self, X: Any, sample: int | None = None) -> Outcome:
        """The outcome of a DataFrame of validated records through the original objects.
        ``sample`` bounds the observed rows of one large request (a random subset)."""
        P = np.asarray(self.target.predict_proba(X), dtype=float)
        enc = self.guards.encoder
        return self._outcome(
            P, X, self.guards.screen_rows(X),
            lambda idx: enc.encode_frame(X.iloc[idx] if hasattr(X, "iloc") else X[idx]), sample)

    def _outcome(self, P: np.ndarray, X: Any, suspicious: np.ndarray,
                 encode: Callable[[np.ndarray], Any], sample: int | None) -> Outcome:
        n = len(P)
        answer = self.guards.modify_output(P, X)
        prada = self.guards.prada
        if prada is None:
            nothing = np.zeros(n, dtype=bool)
            return Outcome(P, answer, suspicious, nothing, nothing)
        idx = np.arange(n) if sample is None or n <= sample else np.sort(
            np.random.default_rng(int(time.time_ns() % 2**32)).choice(n, sample, replace=False))
        E = np.zeros((n, self.guards.encoder.width))
        E[idx] = encode(idx)
        seen = np.zeros(n, dtype=bool)
        seen[idx] = True
        far = np.zeros(n, dtype=bool)
        far[idx] = np.asarray(prada.far_mask(E[idx]), dtype=bool)
        return Outcome(P, answer, suspicious, seen, far, E)

    def close(self) -> None:
        self.batcher.close()
