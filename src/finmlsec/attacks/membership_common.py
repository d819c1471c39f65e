"""What membership-inference attacks share: candidates, reference models, and the result.

The attacker holds candidate records with their labels (the evaluator's members and non-members,
whose membership the attack never reads) and, for calibrated attacks, a population of records
from the same distribution and the training algorithm (``model_factory``). Reference models are
trained on random halves of the population such that every population record is in exactly half
of them (Carlini et al. 2022); a candidate found in the population (matched by content) thus has
IN and OUT models, a candidate outside it only OUT models.

Example:
    >>> import numpy as np
    >>> logit_confidence(np.array([[0.2, 0.8]]), np.array([1])).round(3).tolist()
    [1.386]
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from finmlsec import metrics
from finmlsec.arrays import concat_rows, take_rows
from finmlsec.attacks.base import AttackData, Outcome
from finmlsec.attacks.membership_exposure import exposure
from finmlsec.errors import BudgetExceededError, CapabilityError
from finmlsec.tasks import task_map

_EPS = 1e-7
_TINY = 1e-45
#: Reference models at which LiRA and RMIA reach their published strength; fewer give a
#: lower bound of the membership risk.
FULL_REFERENCE = 64


def label_columns(classes: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Column of each record's true label in the target's probability matrix."""
    classes = np.asarray(classes)
    y = np.asarray(y)
    if np.issubdtype(classes.dtype, np.integer):
        lookup = {int(c): i for i, c in enumerate(classes)}
        return np.array([lookup.get(int(v), int(v)) for v in y])
    return y.astype(int)


def true_proba(P: np.ndarray, cols: np.ndarray) -> np.ndarray:
    return np.asarray(P)[np.arange(len(cols)), cols]


def logit_confidence(P: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """LiRA's statistic as its authors compute it: ``log(p_y + 1e-45) - log(sum of the other
    classes' probabilities + 1e-45)``. A forest's vote fractions of exactly 0 or 1 keep their
    distance from 0.995 (clipping at 1e-7 squeezed them to +-16 and cost about 0.03 AUC)."""
    P = np.asarray(P, dtype=np.float64)
    py = true_proba(P, cols)
    rest = np.clip(P.sum(axis=1) - py, 0.0, None)
    return np.log(py + _TINY) - np.log(rest + _TINY)


def row_keys(X: Any) -> np.ndarray:
    """A content hash per record (to find candidates inside the population)."""
    if isinstance(X, pd.DataFrame):
        return pd.util.hash_pandas_object(X.reset_index(drop=True), index=False).to_numpy()
    arr = np.ascontiguousarray(np.asarray(X))
    return np.array([hash(r.tobytes()) for r in arr.reshape(len(arr), -1)])


@dataclass(frozen=True)
class Candidates:
    """Records to classify as member or not; ``truth`` is for scoring only."""

    X: Any
    y: np.ndarray
    truth: np.ndarray
    #: each record's row index in the members (truth 1) or non-members (truth 0) it came from
    rows: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.y)


def candidates(data: AttackData, limit: int | None, seed: int) -> tuple[Candidates, list[str]]:
    """Members and non-members, shuffled; at most ``limit`` records (balanced subsample)."""
    if data.members is None or data.nonmembers is None:
        raise CapabilityError("membership inference needs candidate records (members and "
                              "non-members) to score; provide AttackData.members/nonmembers")
    if data.members.y is None or data.nonmembers.y is None:
        raise CapabilityError("membership inference needs the labels of the candidate records")
    rng = np.random.default_rng(seed)
    im, inn = np.arange(len(data.members)), np.arange(len(data.nonmembers))
    notes = []
    if limit is not None and limit < 2:
        raise BudgetExceededError(
            f"membership inference needs at least 2 queries (one member, one non-member); "
            f"{limit} remain: raise the budget", used=0, budget=max(limit, 0))
    if limit is not None and len(im) + len(inn) > limit:
        k = max(limit // 2, 0)
        im = np.sort(rng.choice(im, size=min(k, len(im)), replace=False))
        inn = np.sort(rng.choice(inn, size=min(limit - len(im), len(inn)), replace=False))
        notes.append(f"query budget: scored {len(im)} members and {len(inn)} non-members")
    X = concat_rows(take_rows(data.members.X, im), take_rows(data.nonmembers.X, inn))
    y = np.concatenate([np.asarray(data.members.y)[im], np.asarray(data.nonmembers.y)[inn]])
    truth = np.concatenate([np.ones(len(im), int), np.zeros(len(inn), int)])
    rows = np.concatenate([im, inn])
    order = rng.permutation(len(y))
    return Candidates(take_rows(X, order), y[order], truth[order], rows[order]), notes


def fit_reference(shared: tuple[Any, Any, np.ndarray, np.ndarray], i: int) -> Any:
    """Reference model ``i``: ``factory()`` fitted on the population records ``keep[i]`` marks
    (one task of :class:`ReferenceModels`)."""
    factory, population, y, keep = shared
    idx = np.flatnonzero(keep[i])
    # small tabular models fit much faster single-threaded (no BLAS oversubscription)
    with threadpool_limits(limits=1):
        return factory().fit(take_rows(population, idx), y[idx])


class ReferenceModels:
    """``n`` models trained like the target on random halves of the population; every
    population record is in exactly half of them."""

    def __init__(self, factory: Callable[[], Any], population: Any, y: np.ndarray, n: int,
                 seed: int, progress: Callable[[int], None] | None = None) -> None:
        rng = np.random.default_rng(seed)
        N = len(y)
        order = np.argsort(rng.random((n, N)), axis=0)
        self.keep = order < n // 2 if n > 1 else rng.random((1, N)) < 0.5
        self.keys = row_keys(population)
        # independent of each other: tasks of their own where the executor spreads them
        self.models = task_map(fit_reference, range(n), (factory, population, np.asarray(y),
                                                         self.keep), progress)

    def membership_of(self, X: Any) -> np.ndarray:
        """(n_models, n_records): True where the record was in that model's training set."""
        pos = {k: i for i, k in enumerate(self.keys)}
        idx = np.array([pos.get(k, -1) for k in row_keys(X)])
        inn = np.zeros((len(self.models), len(idx)), dtype=bool)
        found = idx >= 0
        inn[:, found] = self.keep[:, idx[found]]
        return inn

    def proba(self, X: Any) -> np.ndarray:
        """(n_models, n_records, n_classes) probabilities of each reference model."""
        with threadpool_limits(limits=1):
            return np.stack([np.asarray(m.predict_proba(X), dtype=float) for m in self.models])


#: The delta and confidence at which a membership attack's empirical privacy loss is stated.
AUDIT_DELTA = 1e-5
AUDIT_CONFIDENCE = 0.95


def privacy_loss(truth: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """The empirical privacy loss a membership test demonstrates
    (:func:`finmlsec.metrics.empirical_epsilon`, split method, at :data:`AUDIT_DELTA` and
    :data:`AUDIT_CONFIDENCE`): ``empirical_epsilon`` (the lower bound), ``..._point``,
    ``..._delta``, ``..._confidence``, the error-rate bounds it rests on (``..._fpr_upper``,
    ``..._fnr_upper``: to restate it at another delta) and ``..._records`` (the held-out half
    of the candidates it was computed on); no figure when there are too few candidates."""
    try:
        r = metrics.empirical_epsilon(truth, scores, delta=AUDIT_DELTA,
                                      confidence=AUDIT_CONFIDENCE, method="split", seed=0)
    except ValueError:
        return {}
    return {"empirical_epsilon": r["epsilon_lower"], "empirical_epsilon_point": r["epsilon_point"],
            "empirical_epsilon_delta": r["delta"],
            "empirical_epsilon_confidence": r["confidence"],
            "empirical_epsilon_fpr_upper": r["fpr_upper"],
            "empirical_epsilon_fnr_upper": r["fnr_upper"],
            "empirical_epsilon_records": r["n"]}


def membership_result(scores: np.ndarray, cands: Candidates, notes: list[str],
                      extra: dict[str, float] | None = None) -> Outcome:
    truth = cands.truth
    s = np.nan_to_num(np.asarray(scores, dtype=float), nan=0.0, posinf=1e12, neginf=-1e12)
    auc = metrics.auc(truth, s)
    low = metrics.tpr_at_fpr(truth, s, 0.01)
    n_ref = int((extra or {}).get("reference_models", 0))
    eps = privacy_loss(truth, s)
    m = {
        "auc": auc,
        "tpr_at_0.1%_fpr": metrics.tpr_at_fpr(truth, s, 0.001),
        "tpr_at_1%_fpr": metrics.tpr_at_fpr(truth, s, 0.01),
        "advantage": metrics.advantage(truth, s),
        "advantage_auc": float(max(0.0, 2 * auc - 1)),
        # what an attacker gains over guessing (TPR = FPR) where false accusations are rare
        "low_fpr_lift": float(max(0.0, low - 0.01)),
        "lower_bound": float(n_ref < FULL_REFERENCE),
        "members": float(truth.sum()),
        "nonmembers": float(len(truth) - truth.sum()),
        **eps,
        **(extra or {}),
    }
    rows = cands.rows if cands.rows is not None else np.arange(len(truth))
    try:
        found = exposure(s, cands.X, cands.y, truth, rows)
    except (TypeError, ValueError):  # records the profile cannot read; the figures stand
        found = {}
    return Outcome(
        details={"exposure": found} if found else {},
        success=max(m["advantage_auc"], m["low_fpr_lift"]), metrics=m,
        curves={"roc": metrics.roc_points(truth, s)}, notes=(
            (f"a lower bound: {n_ref} reference models (LiRA and RMIA reach their published "
             f"strength with {FULL_REFERENCE}; run the thorough profile before accepting)",)
            if n_ref < FULL_REFERENCE else ()) + tuple(notes),
    )
