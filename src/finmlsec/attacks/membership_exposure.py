"""Who is exposed: the training records a membership attack singles out, and what they share.

From the attack's per-record scores: the members it scores highest (identified by their row
index in the training data given to the attack, never by content), how exposed the most exposed
1% of members are (their share flagged at 1% false positives, beside the share a score with no
signal gives the top 1% of as many records, and where their scores fall among the
non-members'), and a short profile of the most exposed records against all candidates:
distance to their nearest neighbours (outliers), rare category values, label groups, and the
category values over-represented among them (aggregates of at least :data:`MIN_GROUP` records).
Only these aggregates and at most :data:`TOP` row indices are kept (results are stored).

Example:
    >>> import numpy as np, pandas as pd
    >>> X = pd.DataFrame({"age": np.r_[np.arange(40.0), 99.0], "job": ["a"] * 40 + ["rare"]})
    >>> y = np.r_[np.zeros(41, int)]; truth = np.r_[np.ones(21, int), np.zeros(20, int)]
    >>> truth[-1] = 1; truth[20] = 0
    >>> s = np.r_[np.zeros(40), 5.0]
    >>> e = exposure(s, X, y, truth, np.arange(41))
    >>> e["top"][0]["row"], e["top"][0]["above_nonmembers"], e["top1pct"]["flagged_at_1pct_fpr"]
    (40, 1.0, 1.0)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

#: Row indices kept (the most exposed members, highest score first).
TOP = 20
#: Smallest group whose shared category value is reported (no description of a handful).
MIN_GROUP = 3
#: A category value is rare below this share of the candidates.
RARE = 0.05


def _numeric(X: Any) -> tuple[np.ndarray, pd.DataFrame | None]:
    """Standardised numeric view (one-hot categories) and the categorical columns, if any."""
    if isinstance(X, pd.DataFrame):
        cats = X.select_dtypes(exclude="number")
        nums = X.select_dtypes(include="number").astype(float)
        nums = (nums - nums.mean()) / nums.std(ddof=0).replace(0.0, 1.0)
        parts = [nums.fillna(0.0).to_numpy()]
        if cats.shape[1]:
            parts.append(pd.get_dummies(_bounded(cats.astype(str))).to_numpy(dtype=float))
        return np.hstack(parts), (cats.astype(str) if cats.shape[1] else None)
    A = np.asarray(X, dtype=float).reshape(len(X), -1)
    sd = A.std(axis=0)
    return (A - A.mean(axis=0)) / np.where(sd > 0, sd, 1.0), None


def _bounded(cats: pd.DataFrame) -> pd.DataFrame:
    """Each column with its :data:`~finmlsec.schema.MAX_LEVELS` - 1 most common values kept
    and the others one value: a free-text column of thousands of values would otherwise get a
    dense indicator column per value."""
    from finmlsec.schema import MAX_LEVELS

    out = cats.copy()
    for c in out.columns:
        counts = out[c].value_counts()
        if len(counts) > MAX_LEVELS:
            out[c] = out[c].where(out[c].isin(counts.index[:MAX_LEVELS - 1]), "\x00other")
    return out


def _knn_distance(Z: np.ndarray, k: int = 5) -> np.ndarray:
    """Mean distance of each record to its ``k`` nearest other records."""
    from sklearn.neighbors import NearestNeighbors

    k = min(k, len(Z) - 1)
    if k < 1:
        return np.zeros(len(Z))
    d, _ = NearestNeighbors(n_neighbors=k + 1).fit(Z).kneighbors(Z)
    return d[:, 1:].mean(axis=1)


#: Draws of a score with no signal behind :func:`tail_chance`.
CHANCE_DRAWS = 200


def tail_chance(n_members: int, n_nonmembers: int, seed: int = 0) -> float:
    """The share of the top 1% of ``n_members`` scores above the 99th percentile of
    ``n_nonmembers`` scores when every score is drawn alike (an attack with no signal): the
    most exposed 1% are chosen as the highest scores, so most of them lie above most
    non-members whatever the model; ``flagged_at_1pct_fpr`` of the top 1% means something only
    beside this (about 0.9 for thousands of records).

    Example:
        >>> 0.85 < tail_chance(2500, 5000) < 0.95
        True
    """
    rng = np.random.default_rng(seed)
    k = max(1, math.ceil(0.01 * n_members))
    hits = 0.0
    for _ in range(CHANCE_DRAWS):
        t = float(np.quantile(rng.random(n_nonmembers), 0.99))
        top = np.partition(rng.random(n_members), n_members - k)[n_members - k:]
        hits += float(np.mean(top > t))
    return hits / CHANCE_DRAWS


def flagged_at(values: np.ndarray, s_non: np.ndarray, fpr: float = 0.01) -> float:
    """The share of ``values`` a test flags at false-positive rate ``fpr`` on the non-member
    scores ``s_non``, ties at the threshold flagged with the probability that makes the rate
    exact (the randomised Neyman-Pearson test): rounded scores tie in blocks, and a strict
    ``>`` at the 99th percentile then flags none of a block that holds it however exposed it
    is (rounding read as protecting every member while the advantage stood at 0.217).

    Example:
        >>> non = np.array([0.1] * 90 + [0.9] * 10)  # 10% of non-members tie at the top
        >>> round(flagged_at(np.array([0.9, 0.9, 0.1, 0.1]), non), 6)  # 1% of 10%: each 0.9 at 0.1
        0.05
    """
    t = float(np.quantile(s_non, 1.0 - fpr))
    above, at = float(np.mean(s_non > t)), float(np.mean(s_non == t))
    gamma = min(1.0, max(0.0, (fpr - above) / at)) if at > 0 else 0.0
    v = np.asarray(values, dtype=float)
    return float(np.mean(v > t) + gamma * np.mean(v == t))


def exposure(scores: np.ndarray, X: Any, y: np.ndarray, truth: np.ndarray,
             rows: np.ndarray) -> dict[str, Any]:
    """The exposure summary of one membership test (see the module docstring); ``rows``: each
    candidate's row index in the member (or non-member) records given to the attack."""
    s = np.asarray(scores, dtype=float)
    mem, non = np.flatnonzero(truth == 1), np.flatnonzero(truth == 0)
    if len(mem) == 0 or len(non) == 0:
        return {}
    order = mem[np.argsort(-s[mem], kind="mergesort")]
    s_non = np.sort(s[non])
    k = max(1, math.ceil(0.01 * len(mem)))
    tail = order[:k]
    pct = np.searchsorted(s_non, s[order[:TOP]], side="left") / len(s_non)
    top = [{"row": int(rows[i]), "above_nonmembers": float(p)}
           for i, p in zip(order[:TOP], pct, strict=True)]
    tail_pct = np.searchsorted(s_non, s[tail], side="left") / len(s_non)
    out: dict[str, Any] = {
        "members": int(len(mem)), "top": top,
        "top1pct": {"n": int(k), "flagged_at_1pct_fpr": flagged_at(s[tail], s_non),
                    "chance": tail_chance(len(mem), len(non)),
                    "mean_above_nonmembers": float(np.mean(tail_pct))},
        "all_flagged_at_1pct_fpr": flagged_at(s[mem], s_non),
    }
    try:
        out["profile"] = _profile(X, y, order[:TOP])
    except (TypeError, ValueError):  # content the profile cannot read (e.g. raw text)
        out["profile"] = None
    return out


def _profile(X: Any, y: np.ndarray, exposed: np.ndarray) -> dict[str, Any]:
    Z, cats = _numeric(X)
    dist = _knn_distance(Z)
    rank = (np.argsort(np.argsort(dist)) + 0.5) / len(dist)  # percentile of outlyingness
    y = np.asarray(y)
    labels, counts = np.unique(y, return_counts=True)
    share = dict(zip(labels.tolist(), (counts / len(y)).tolist(), strict=True))
    ex_lab, ex_cnt = np.unique(y[exposed], return_counts=True)
    p: dict[str, Any] = {
        "n_exposed": int(len(exposed)),
        "outlier_percentile": {"exposed": float(rank[exposed].mean()), "all": 0.5},
        "label_share": {str(lab): {"exposed": float(c / len(exposed)), "all": share[lab]}
                        for lab, c in zip(ex_lab.tolist(), ex_cnt.tolist(), strict=True)},
    }
    if cats is not None:
        freq = {c: cats[c].map(cats[c].value_counts(normalize=True)) for c in cats}
        rare = np.zeros(len(cats), dtype=bool)
        for c in cats:
            rare |= freq[c].to_numpy() < RARE
        p["rare_category_share"] = {"exposed": float(rare[exposed].mean()),
                                    "all": float(rare.mean())}
        over: list[tuple[float, dict[str, Any]]] = []  # (over-representation, the group)
        sub = cats.iloc[exposed]
        for c in cats:
            vc = sub[c].value_counts()
            for v, n in vc.items():
                if n < MIN_GROUP:
                    continue
                a, b = n / len(exposed), float((cats[c] == v).mean())
                if a >= 2 * b:
                    over.append((a / max(b, 1e-9), {"field": str(c), "value": str(v),
                                                    "exposed": float(a), "all": b}))
        over.sort(key=lambda o: o[0], reverse=True)
        p["over_represented"] = [group for _, group in over[:3]]
    return p
