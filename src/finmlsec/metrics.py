"""Pure metric functions shared by attacks, defences, scans and reports.

Example:
    >>> import numpy as np
    >>> from finmlsec import metrics
    >>> y = np.array([0, 0, 1, 1]); s = np.array([0.1, 0.2, 0.8, 0.9])
    >>> metrics.auc(y, s), metrics.advantage(y, s), metrics.tpr_at_fpr(y, s, 0.01)
    (1.0, 1.0, 1.0)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve


def _check(y_true: Any, score: Any) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).astype(int).ravel()
    s = np.asarray(score, dtype=float).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.shape[0]} vs {s.shape[0]}")
    if len(np.unique(y)) != 2:
        raise ValueError("need both classes (members and non-members) to compute a ROC metric")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or infinity")
    return y, s


def auc(y_true: Any, score: Any) -> float:
    """ROC AUC of ``score`` for the positive class 1."""
    y, s = _check(y_true, score)
    return float(roc_auc_score(y, s))


def tpr_at_fpr(y_true: Any, score: Any, fpr: float) -> float:
    """Highest true-positive rate reachable with a false-positive rate <= ``fpr`` (Carlini 2022)."""
    y, s = _check(y_true, score)
    f, t, _ = roc_curve(y, s)
    ok = f <= fpr
    return float(t[ok].max()) if ok.any() else 0.0


def advantage(y_true: Any, score: Any) -> float:
    """Membership advantage: max over thresholds of TPR - FPR (Yeom et al. 2018)."""
    y, s = _check(y_true, score)
    f, t, _ = roc_curve(y, s)
    return float(np.max(t - f))


def roc_points(y_true: Any, score: Any, max_points: int = 200) -> dict[str, list[float]]:
    """The ROC curve as data (``fpr``, ``tpr``), thinned to at most ``max_points`` points while
    keeping the low-FPR end, where it matters."""
    y, s = _check(y_true, score)
    f, t, _ = roc_curve(y, s)
    if len(f) > max_points:
        # log-spaced FPR grid keeps resolution at low FPR
        grid = np.unique(np.concatenate([[0.0], np.logspace(-4, 0, max_points - 1)]))
        t = np.interp(grid, f, t)
        f = grid
    return {"fpr": [float(v) for v in f], "tpr": [float(v) for v in t]}


def fidelity(pred_a: Any, pred_b: Any) -> float:
    """Share of inputs on which two models give the same label."""
    a = np.asarray(pred_a).ravel()
    b = np.asarray(pred_b).ravel()
    if a.shape != b.shape:
        raise ValueError(f"prediction arrays differ in length: {a.shape[0]} vs {b.shape[0]}")
    if a.size == 0:
        raise ValueError("fidelity of zero predictions is undefined")
    return float(np.mean(a == b))


def utility_drop(before: float, after: float) -> float:
    """Loss of a utility score (accuracy, AUC) caused by a countermeasure; positive = worse."""
    return float(before - after)
