"""The share of the most exposed 1% of members flagged at 1% false positives stands beside what
an attack with no signal gives: the top 1% are chosen as the highest scores, so on a model that
leaks nothing (PATE on the openintro loans, advantage 0.03) they were 'identified in 100% of
cases' with no baseline in sight."""

from __future__ import annotations

import numpy as np
import pandas as pd

from finmlsec.attacks.membership_exposure import exposure
from finmlsec.scan.privacy import exposure_words


def test_a_score_with_no_signal_exposes_its_top_one_percent_at_chance() -> None:
    rng = np.random.default_rng(0)
    n_mem, n_non = 2000, 2000
    truth = np.r_[np.ones(n_mem, int), np.zeros(n_non, int)]
    scores = rng.random(n_mem + n_non)  # no signal: members and non-members alike
    X = pd.DataFrame({"income": rng.normal(size=n_mem + n_non)})
    e = exposure(scores, X, np.zeros(n_mem + n_non, int), truth, np.arange(n_mem + n_non))
    top = e["top1pct"]
    assert top["flagged_at_1pct_fpr"] >= 0.7  # the selection alone puts most above the others
    assert abs(top["flagged_at_1pct_fpr"] - top["chance"]) <= 0.2
    words = exposure_words({"attack": "membership.metric", **e, "countermeasures": []})
    assert f"an attack with no signal gives {top['chance']:.0%}" in words, words
