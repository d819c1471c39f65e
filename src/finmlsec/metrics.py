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


def clopper_pearson_upper(k: int, n: int, alpha: float) -> float:
    """One-sided Clopper-Pearson upper bound on a rate seen ``k`` times in ``n`` trials: the true
    rate is at most this with probability ``1 - alpha``.

    Example:
        >>> round(clopper_pearson_upper(0, 100, 0.05), 4), clopper_pearson_upper(5, 5, 0.05)
        (0.0295, 1.0)
    """
    from scipy.stats import beta

    if n <= 0:
        return 1.0
    if k >= n:
        return 1.0
    return float(beta.ppf(1.0 - alpha, k + 1, n - k))


def clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Two-sided Clopper-Pearson interval (exact, conservative) of a rate seen ``k`` times in
    ``n`` trials, at confidence ``1 - alpha``.

    Example:
        >>> lo, hi = clopper_pearson(3, 3)
        >>> round(lo, 3), hi
        (0.292, 1.0)
    """
    from scipy.stats import beta

    if n <= 0:
        return 0.0, 1.0
    lo = 0.0 if k <= 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k >= n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def _cp_upper(k: np.ndarray, n: int, alpha: float) -> np.ndarray:
    """:func:`clopper_pearson_upper` for an array of counts out of the same ``n``."""
    from scipy.stats import beta

    k = np.asarray(k, dtype=float)
    full = k >= n
    out = np.ones_like(k)
    out[~full] = beta.ppf(1.0 - alpha, k[~full] + 1, n - k[~full])
    return out


def _eps_from_rates(fpr: np.ndarray, fnr: np.ndarray, delta: float) -> np.ndarray:
    """The epsilon an (epsilon, delta)-DP mechanism needs for a test with these error rates
    (Kairouz et al. 2015): ``FPR + e^eps FNR >= 1 - delta`` and ``FNR + e^eps FPR >= 1 - delta``;
    0 where the rates imply nothing."""
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.log(np.clip(1.0 - delta - fpr, 0.0, None) / fnr)
        b = np.log(np.clip(1.0 - delta - fnr, 0.0, None) / fpr)
    e = np.fmax(np.nan_to_num(a, nan=0.0, neginf=0.0), np.nan_to_num(b, nan=0.0, neginf=0.0))
    return np.clip(e, 0.0, None)


def _rates(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """False positives and false negatives of the test ``score >= t`` at every distinct ``t``
    (plus one threshold above all scores), with the counts of non-members and members."""
    order = np.argsort(-s, kind="mergesort")
    s_sorted, y_sorted = s[order], y[order]
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), len(s) - 1]  # last index of each tie group
    tp = np.cumsum(y_sorted)[last]
    fp = (last + 1) - tp
    fp = np.r_[0, fp]
    fn = n_pos - np.r_[0, tp]
    thresholds = np.r_[np.inf, s_sorted[last]]
    return thresholds, fp, fn, n_neg, n_pos


def epsilon_from_bounds(fpr_upper: float, fnr_upper: float, delta: float) -> float:
    """The lower bound on epsilon at ``delta`` from upper bounds of a test's error rates (the last
    step of :func:`empirical_epsilon`, to restate its bound at another delta).

    Example:
        >>> round(epsilon_from_bounds(0.05, 0.5, 0.0), 3)
        2.303
    """
    return float(_eps_from_rates(np.array([fpr_upper]), np.array([fnr_upper]), delta)[0])


def empirical_epsilon(y_true: Any, score: Any, *, delta: float = 1e-5,
                      confidence: float = 0.95, method: str = "split",
                      seed: int = 0, grid: int = 20) -> dict[str, float]:
    """A statistical **lower bound** on the epsilon of (epsilon, delta)-differential privacy that
    the training of a model can have, given a membership test's scores (``y_true``: 1 for a
    member, 0 for a non-member; higher ``score`` = more likely a member), after Kairouz et al.
    (2015), Jagielski et al. (2020) and Nasr et al. (2021).

    For the test "member if score >= t" the false-positive rate FPR (over non-members) and the
    false-negative rate FNR (over members) of any (epsilon, delta)-DP training satisfy
    ``FPR + e^eps FNR >= 1 - delta`` and the same with the two swapped. Clopper-Pearson upper
    bounds of FPR and FNR (each at ``(1 - confidence) / 2``, joined by a union bound) turn this
    into ``eps >= max(ln((1 - delta - FPR_hi) / FNR_hi), ln((1 - delta - FNR_hi) / FPR_hi))``,
    which holds with probability at least ``confidence``. Choosing the best threshold on the same
    records would overstate it, so the choice is corrected for:

    - ``method="split"``: the threshold is chosen (by the bound it gives) on a random stratified
      half of the records (``seed``), and the bound is computed on the other half only;
    - ``method="bonferroni"``: ``grid`` thresholds at quantiles of all scores (chosen without the
      labels), each bounded at ``(1 - confidence) / grid``; the best of them is the bound.

    **Assumption.** The Clopper-Pearson bounds treat the candidates' outcomes as independent
    trials of the membership game. In a real audit all members are in one training run and the
    candidates share one model, so they are not independent draws of the game the DP definition
    speaks of (one record in or out); the figure is the established heuristic audit of
    Jagielski/Nasr, not a proof. (Steinke et al. 2023 show a one-run audit is sound when members
    are included independently at random, as the candidates of a scan are; their bound is
    somewhat looser.) It is a lower bound: a weak attack gives a small bound whatever the true
    epsilon, so a small figure never shows that a model is private.

    Both readings of a threshold count ("member if score >= t" and "member if score <= t").
    Returns ``epsilon_lower`` (the bound), ``epsilon_point`` (the same formula at the observed
    rates of the chosen test on the same records, each rate kept at least ``1/(2n)``: an
    estimate, not a bound), ``delta``, ``confidence``, ``threshold`` and ``direction`` (1: member
    if score >= threshold; -1: if score <= threshold), ``fpr_upper``, ``fnr_upper`` and ``n``
    (the records the bound was computed on).

    Example:
        >>> import numpy as np
        >>> y = np.r_[np.ones(500), np.zeros(500)]
        >>> r = empirical_epsilon(y, y)             # perfectly separable: grows with n
        >>> 3.0 < r["epsilon_lower"] < 5.0
        True
        >>> empirical_epsilon(y, np.zeros(1000))["epsilon_lower"]   # no signal
        0.0
    """
    y, s = _check(y_true, score)
    if not 0.0 <= delta < 1.0:
        raise ValueError(f"delta must be in [0, 1); got {delta}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1); got {confidence}")
    alpha = 1.0 - confidence

    def bound(fp_k: np.ndarray, fn_k: np.ndarray, nn: int, np_: int,
              a: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        fpr_hi = _cp_upper(np.asarray(fp_k), nn, a / 2)
        fnr_hi = _cp_upper(np.asarray(fn_k), np_, a / 2)
        return _eps_from_rates(fpr_hi, fnr_hi, delta), fpr_hi, fnr_hi

    # a test is (sign, t): "member if sign * score >= t"; both signs count (a test that flags
    # non-members is as telling)
    if method == "split":
        rng = np.random.default_rng(seed)
        pick = np.zeros(len(y), dtype=bool)
        for cls in (0, 1):
            idx = np.flatnonzero(y == cls)
            pick[rng.choice(idx, size=len(idx) // 2, replace=False)] = True
        ya, sa, yb, sb = y[pick], s[pick], y[~pick], s[~pick]
        if len(np.unique(ya)) < 2 or len(np.unique(yb)) < 2:
            raise ValueError("too few members or non-members to split (need 2 of each)")
        best: tuple[float, float, float] = (-1.0, 1.0, np.inf)
        for sign in (1.0, -1.0):
            ta, fpa, fna, nna, npa = _rates(ya, sign * sa)
            ea, _, _ = bound(fpa, fna, nna, npa, alpha)
            i = int(np.argmax(ea))
            if ea[i] > best[0]:
                best = (float(ea[i]), sign, float(ta[i]))
        tests = [(best[1], best[2])]
    elif method == "bonferroni":
        if grid < 1:
            raise ValueError(f"grid must be >= 1; got {grid}")
        yb, sb = y, s
        cuts = np.unique(np.quantile(s, np.linspace(0.0, 1.0, grid + 2)[1:-1]))
        # "-s >= -c" is "s <= c": the same cut read the other way
        tests = [(1.0, float(c)) for c in cuts] + [(-1.0, -float(c)) for c in cuts]
        alpha = alpha / len(tests)
    else:
        raise ValueError(f"unknown method {method!r}; use 'split' or 'bonferroni'")
    pos, neg = sb[yb == 1], sb[yb == 0]
    fp_k = np.array([(sign * neg >= t).sum() for sign, t in tests])
    fn_k = np.array([(sign * pos < t).sum() for sign, t in tests])
    e, fpr_hi, fnr_hi = bound(fp_k, fn_k, len(neg), len(pos), alpha)
    i = int(np.argmax(e))
    point = _eps_from_rates(np.maximum(fp_k[i] / len(neg), 0.5 / len(neg)),
                            np.maximum(fn_k[i] / len(pos), 0.5 / len(pos)), delta)
    return {
        "epsilon_lower": float(e[i]), "epsilon_point": float(point), "delta": float(delta),
        "confidence": float(confidence), "threshold": float(tests[i][0] * tests[i][1]),
        "direction": tests[i][0], "fpr_upper": float(fpr_hi[i]), "fnr_upper": float(fnr_hi[i]),
        "n": float(len(yb)),
    }


def paired_margin_p(b: int, c: int, n: int, margin: float) -> float:
    """One-sided p-value that a copy's fidelity exceeds another's by more than ``margin``, both
    scored record by record against the same ``n`` answers: ``b`` records only the first copy
    gets right, ``c`` only the second (Tango's score test for a difference of paired
    proportions, H0: ``p_b - p_c <= margin``; the variance taken at the restricted maximum
    likelihood under H0, which keeps it valid for small ``n`` and few discordant records).

    Example:
        >>> round(paired_margin_p(20, 2, 48, 0.05), 4), round(paired_margin_p(3, 1, 48, 0.05), 2)
        (0.0003, 0.58)
        >>> round(paired_margin_p(0, 0, 48, 0.05), 2), paired_margin_p(0, 0, 0, 0.05)
        (0.94, 1.0)
    """
    from scipy.stats import norm

    if n <= 0:
        return 1.0
    d = float(margin)
    a2, b1 = 2.0 * n, -b - c + (2.0 * n - b + c) * d
    c0 = -c * d * (1.0 - d)
    q = (-b1 + np.sqrt(max(b1 * b1 - 4.0 * a2 * c0, 0.0))) / (2.0 * a2)  # restricted MLE of p_c
    var = n * (2.0 * q + d * (1.0 - d))
    num = b - c - n * d
    if var <= 0:
        return 1.0 if num <= 0 else 0.0
    return float(norm.sf(num / np.sqrt(var)))


def paired_difference_lower(b: int, c: int, n: int, alpha: float = 0.05) -> float:
    """The one-sided ``1 - alpha`` lower confidence bound of the difference ``(b - c) / n`` of
    two paired proportions (:func:`paired_margin_p` inverted): the difference exceeds a margin
    with significance ``alpha`` exactly when this bound does.

    Example:
        >>> round(paired_difference_lower(20, 2, 48), 3), round(paired_difference_lower(3, 1, 48), 3)
        (0.235, -0.035)
    """
    if n <= 0:
        return -1.0
    lo, hi = -1.0 + 1e-9, (b - c) / n
    if paired_margin_p(b, c, n, lo) >= alpha:
        return -1.0
    for _ in range(60):  # the p-value grows with the margin tested
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if paired_margin_p(b, c, n, mid) < alpha else (lo, mid)
    return float(lo)
