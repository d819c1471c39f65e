"""preprocessor(): the one encoding of records; the same numbers as a hand-built encoder on
complete data, missing values imputed, unknown categories ignored, compiled by the gateway."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from finmlsec.datasets import load
from finmlsec.errors import ConfigError
from finmlsec.gateway.fastpath import compile_model, verified
from finmlsec.schema import Feature, FeatureSchema, preprocessor

SMALL = FeatureSchema(features=(
    Feature(name="age", type="integer", min=18, max=90, nullable=True),
    Feature(name="job", type="categorical", categories=("owner", "clerk", "none"), nullable=True),
    Feature(name="income", type="numeric", min=0, max=1e6, nullable=True),
))


@pytest.fixture(scope="module")
def credit():
    ds = load("german_credit")
    train, test = ds.split(0.3, seed=0)
    return ds.schema, train, test


def _by_hand(schema: FeatureSchema, *, fixed: bool) -> ColumnTransformer:
    cats = schema.categorical()
    values = [list(f.categories or ()) for f in cats] if fixed else "auto"
    return ColumnTransformer([
        ("cat", OneHotEncoder(categories=values, handle_unknown="ignore"), [f.name for f in cats]),
        ("num", StandardScaler(), [f.name for f in schema.numeric()]),
    ])


@pytest.mark.parametrize("categories", ["schema", "data"])
def test_complete_data_encodes_exactly_as_the_hand_built_encoder(credit, categories):
    schema, train, test = credit
    want = _by_hand(schema, fixed=categories == "schema").fit(train.X).transform(test.X)
    got = preprocessor(schema, categories=categories).fit(train.X).transform(test.X)
    assert isinstance(got, np.ndarray) and got.dtype == float
    np.testing.assert_array_equal(got, np.asarray(want))


def test_schema_categories_fix_the_width_and_order_whatever_the_rows_hold():
    X = pd.DataFrame({"age": [30, 40], "job": ["clerk", "clerk"], "income": [1.0, 2.0]})
    Z = preprocessor(SMALL).fit(X).transform(X)
    assert Z.shape == (2, 5)  # owner, clerk, none, age, income
    assert Z[:, :3].tolist() == [[0, 1, 0], [0, 1, 0]]
    assert preprocessor(SMALL, categories="data").fit(X).transform(X).shape == (2, 3)


def test_missing_numbers_take_the_fitted_median_and_missing_categories_a_constant_level():
    X = pd.DataFrame({"age": [20.0, np.nan, 60.0, 30.0],
                      "job": ["owner", None, "clerk", np.nan],
                      "income": [np.nan, np.nan, 5.0, 1.0]})
    Z = preprocessor(SMALL, scale=False).fit(X).transform(X)
    assert np.isfinite(Z).all()
    assert Z[1, 3] == 30.0 and Z[0, 4] == 3.0  # medians of 20, 60, 30 and of 5, 1
    assert Z[1, :3].tolist() == [0, 0, 0]  # not one of the schema's categories: no column set
    by_data = preprocessor(SMALL, categories="data", scale=False).fit(X)
    Zd = by_data.transform(X)
    assert Zd.shape == (4, 5)  # clerk, owner, missing, age, income
    assert Zd[1, :3].tolist() == Zd[3, :3].tolist() == [0, 0, 1]
    assert Zd[0, :3].tolist() == [0, 1, 0]


def test_missing_values_in_the_frame_a_model_is_fitted_on_and_asked_about(credit):
    schema, train, test = credit
    X = train.X.copy()
    rng = np.random.default_rng(0)
    for name in ("age", "duration_months", "purpose", "savings"):
        X[name] = X[name].astype(object if name in ("purpose", "savings") else float)
        X.loc[rng.choice(len(X), 40, replace=False), name] = np.nan
    model = make_pipeline(preprocessor(schema), LogisticRegression(max_iter=2000)).fit(X, train.y)
    T = test.X.copy().astype({"age": float, "purpose": object})
    T.loc[:9, "age"], T.loc[:9, "purpose"] = np.nan, None
    p = model.predict_proba(T)
    assert np.isfinite(p).all() and p.shape == (len(T), 2)


def test_an_unknown_category_is_ignored_not_an_error():
    X = pd.DataFrame({"age": [30, 40], "job": ["clerk", "owner"], "income": [1.0, 2.0]})
    pre = preprocessor(SMALL, scale=False).fit(X)
    Z = pre.transform(pd.DataFrame({"age": [50], "job": ["astronaut"], "income": [3.0]}))
    assert Z.tolist() == [[0, 0, 0, 50, 3]]


def test_without_a_schema_the_frame_decides_and_a_matrix_is_scaled():
    X = pd.DataFrame({"n": [1.0, np.nan, 3.0], "c": ["a", "b", "a"], "flag": [True, False, True]})
    Z = preprocessor(X=X).fit_transform(X)
    assert Z.shape == (3, 4) and np.isfinite(Z).all()  # a, b, then n and flag scaled
    M = np.array([[1.0, np.nan], [3.0, 2.0], [5.0, 4.0]])
    assert preprocessor(X=M, scale=False).fit_transform(M).tolist() == [[1, 3], [3, 2], [5, 4]]
    Zm = preprocessor(X=M).fit_transform(M)
    np.testing.assert_allclose(Zm.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(Zm.std(axis=0), 1.0)


def test_bad_calls_say_what_to_do():
    with pytest.raises(ConfigError, match="needs a schema or example records"):
        preprocessor()
    with pytest.raises(ConfigError, match="'categories' parameter of preprocessor"):
        preprocessor(SMALL, categories="fitted")  # type: ignore[arg-type]
    text = FeatureSchema(features=(Feature(name="message", type="text"),))
    with pytest.raises(ConfigError, match="text or image"):
        preprocessor(text)


@pytest.mark.parametrize("kw", [{}, {"scale": False}, {"categories": "data"}])
def test_the_gateway_compiles_it_and_imputes_as_scikit_learn_does(credit, kw):
    schema, train, test = credit
    model = make_pipeline(preprocessor(schema, **kw), LogisticRegression(max_iter=3000))
    model.fit(train.X, train.y)
    fast = verified(lambda: compile_model(model), model.predict_proba, test.X, schema.names)
    assert fast is not None
    X = test.X.iloc[:20].astype({"age": float}).reset_index(drop=True)
    X.loc[[2, 5], "age"] = np.nan
    columns = {n: X[n].tolist() for n in schema.names}
    np.testing.assert_allclose(fast(columns), model.predict_proba(X), rtol=0, atol=1e-12)
