"""Encodings built inside defences and attacks stay narrow on a free-text column with thousands
of distinct values: one dense one-hot column per value made the poison filter run for more than
ten minutes on 50,000 loan records."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finmlsec.schema import MAX_LEVELS, Feature, FeatureSchema, preprocessor

N, LEVELS = 3000, 5000


@pytest.fixture(scope="module")
def records() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    income = rng.normal(5.0, 1.0, N)
    X = pd.DataFrame({
        "income": income,
        "age": rng.integers(20, 70, N).astype(float),
        "purpose": rng.choice(["car", "home", "study"], N),
        "title": [f"title {i}" for i in rng.integers(0, LEVELS, N)],
    })
    X.loc[rng.random(N) < 0.05, "title"] = np.nan
    y = (income + rng.normal(0, 0.5, N) > 5.0).astype(int)
    return X, y


SCHEMA = FeatureSchema(features=[
    Feature(name="income", type="numeric"), Feature(name="age", type="integer"),
    Feature(name="purpose", type="categorical", categories=["car", "home", "study"]),
    Feature(name="title", type="text", nullable=True),
])


def test_the_schemaless_encoding_bounds_each_column(records) -> None:
    X, _ = records
    assert X["title"].nunique() > 2000
    Z = preprocessor(X=X).fit_transform(X)
    assert Z.shape == (N, 3 + MAX_LEVELS + 2)  # purpose, title (bounded), two numbers
    # an unseen title shares the infrequent column, it is not an error
    assert preprocessor(X=X).fit(X).transform(X.assign(title="nobody")).shape[1] == Z.shape[1]


def test_poison_filter_encodes_a_bounded_width_with_or_without_a_schema(records) -> None:
    from finmlsec.defences import DEFENCES

    X, y = records
    cls = DEFENCES.get("poison_filter")
    plain = cls(detectors=("confident_learning", "outlier")).fit(X, y)
    assert plain.estimator_[-1].coef_.shape[1] <= 3 + MAX_LEVELS + 2
    assert plain.decisions_.accept.mean() > 0.7
    typed = cls(detectors=("confident_learning", "outlier"), schema=SCHEMA).fit(X, y)
    assert typed.estimator_[-1].coef_.shape[1] == 3 + 2  # free text left out
    assert typed.decisions_.accept.mean() > 0.7


def test_screens_and_exposure_profile_stay_narrow(records) -> None:
    from finmlsec.attacks.membership_exposure import _numeric
    from finmlsec.defences import DEFENCES
    from finmlsec.defences.input_screen import OODDetector

    X, y = records
    assert OODDetector(random_state=0).fit(X).iso_.n_features_in_ <= 3 + MAX_LEVELS + 2
    screen = DEFENCES.get("feedback_screen")().fit(X, y)
    assert screen.iso_.n_features_in_ <= 3 + MAX_LEVELS + 2
    Z, cats = _numeric(X)
    assert Z.shape[1] <= 2 + 3 + MAX_LEVELS + 1  # numbers, purpose, title (+ missing)
    assert cats is not None and cats["title"].nunique() > 2000  # the profile keeps the values
