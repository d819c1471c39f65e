"""Regression tests for countermeasures that failed on the use cases' models and inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from finmlsec.datasets import load
from finmlsec.defences.base import DEFENCES
from finmlsec.defences.robust import TrimmedLossClassifier


@pytest.fixture(scope="module")
def credit() -> tuple[pd.DataFrame, np.ndarray, Pipeline]:
    ds = load("german_credit")
    X = ds.X.iloc[:500].reset_index(drop=True)
    y = np.asarray(ds.y)[:500]
    cats = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    nums = [c for c in X.columns if c not in cats]
    pre = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), cats),
                             ("num", "passthrough", nums)])
    return X, y, Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=2000))])


@pytest.mark.parametrize("wrap", [False, True], ids=["pipeline", "wrapped_pipeline"])
def test_bagging_keeps_dataframe_for_column_transformer(credit, wrap) -> None:
    X, y, pipe = credit
    est = TrimmedLossClassifier(pipe, trim=0.05, max_iter=2) if wrap else pipe
    bag = DEFENCES.get("robust.bagging")(n_estimators=5, random_state=0)
    model = bag.apply(est, X, y)
    acc = float(np.mean(model.predict(X) == y))
    assert acc > 0.7
    proba = model.predict_proba(X.iloc[:10])
    assert proba.shape == (10, 2) and np.allclose(proba.sum(axis=1), 1.0)
