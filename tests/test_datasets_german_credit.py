from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finmlsec.datasets import DATASETS, load
from finmlsec.errors import ConfigError, DataError
from finmlsec.schema import FeatureType


@pytest.fixture(scope="module")
def ds():
    return load("german_credit")


def test_registered_and_shape(ds) -> None:
    assert "german_credit" in DATASETS
    assert ds.X.shape == (1000, 20)
    assert ds.classes == ("bad", "good")
    assert ds.kind == "tabular"
    assert np.bincount(ds.y).tolist() == [300, 700]
    assert ds.schema.target == "creditability"
    assert ds.schema.positive_class == "good"
    assert list(ds.X.columns) == ds.schema.names


def test_every_row_satisfies_schema(ds) -> None:
    ds.schema.check(ds.X)
    assert ds.schema.is_valid(ds.X).all()


def test_schema_types_and_flags(ds) -> None:
    s = ds.schema
    ints = {f.name for f in s.features if f.type == FeatureType.INTEGER}
    assert ints == {
        "duration_months", "credit_amount", "installment_rate", "residence_since", "age",
        "existing_credits", "dependents",
    }
    assert {f.name for f in s.features if f.immutable} == {
        "age", "personal_status_sex", "foreign_worker"
    }
    assert s["age"].monotone == "increasing"
    assert {f.name for f in s.personal()} >= {"age", "personal_status_sex", "credit_amount"}
    for name in ("duration_months", "credit_amount", "purpose", "savings", "other_debtors"):
        assert s[name].mutable, name
    for name in ("age", "personal_status_sex", "foreign_worker", "credit_history"):
        assert not s[name].mutable, name
    # categories are exactly the values of the data
    for f in s.categorical():
        assert set(ds.X[f.name].unique()) == set(f.categories), f.name


def test_known_first_row(ds) -> None:
    row = ds.X.iloc[0]
    assert row["checking_account"] == "... < 0 DM"
    assert row["duration_months"] == 6 and row["credit_amount"] == 1169 and row["age"] == 67
    assert ds.y[0] == 1


def test_schema_rejects_bad_rows(ds) -> None:
    bad = ds.X.head(3).copy()
    bad.loc[1, "purpose"] = "holiday on the moon"
    with pytest.raises(DataError, match="purpose"):
        ds.schema.check(bad)
    missing = ds.X.head(3).drop(columns=["age"])
    with pytest.raises(DataError, match="age"):
        ds.schema.check(missing)
    nan = ds.X.head(3).copy()
    nan["duration_months"] = nan["duration_months"].astype(float)
    nan.loc[0, "duration_months"] = np.nan
    with pytest.raises(DataError, match="missing"):
        ds.schema.check(nan)


def test_uniform_samples_are_valid(ds) -> None:
    sample = ds.schema.sample_uniform(200, 0)
    assert isinstance(sample, pd.DataFrame)
    assert ds.schema.is_valid(sample).all()


def test_attribution(ds) -> None:
    assert "CC BY 4.0" in ds.license
    assert "Hofmann" in ds.citation and "UCI" in ds.source


def test_load_rejects_unknown_parameter() -> None:
    with pytest.raises(ConfigError, match="n_rows"):
        load("german_credit", n_rows=10)
