"""The credit-scoring model the gateway serves when no model file is given (tests, benchmark, demo).

A logistic regression on one-hot encoded and standardised German Credit features, fitted on a
seeded 70% split; the other 30% is returned as held-out data that legitimate clients would send.

Example:
    >>> m = credit_scoring_model(seed=0)
    >>> m.target.classes_.tolist(), len(m.heldout) > 200
    (['bad', 'good'], True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from finmlsec.schema import FeatureSchema
from finmlsec.targets.base import SklearnTarget


@dataclass(frozen=True)
class DemoModel:
    """A fitted target, its schema, and the held-out records (features only) and labels."""

    target: SklearnTarget
    schema: FeatureSchema
    heldout: pd.DataFrame
    heldout_labels: Any
    train: pd.DataFrame


def credit_scoring_model(seed: int = 0) -> DemoModel:
    """Fit the credit-scoring pipeline on German Credit (seeded split, 30% held out)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from finmlsec.datasets import load
    from finmlsec.schema import preprocessor

    ds = load("german_credit")
    assert ds.schema is not None
    train, test = ds.split(0.3, seed=seed)
    pre = preprocessor(ds.schema, categories="data")
    pipe = Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=2000))])
    pipe.fit(train.X, [ds.classes[i] for i in train.y])
    return DemoModel(SklearnTarget(pipe), ds.schema, test.X, test.y, train.X)
