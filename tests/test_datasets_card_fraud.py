from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finmlsec.datasets import load
from finmlsec.datasets.card_fraud import PATTERNS, simulate
from finmlsec.errors import ConfigError


@pytest.fixture(scope="module")
def ds():
    return load("card_fraud", n_rows=20_000, seed=3)


def test_shape_schema_and_rate(ds) -> None:
    assert ds.X.shape == (20_000, 13)
    assert list(ds.X.columns) == ds.schema.names
    assert ds.classes == ("legit", "fraud") and ds.schema.positive_class == "fraud"
    ds.schema.check(ds.X)
    assert ds.schema.is_valid(ds.X).all()
    assert 0 < ds.y.mean() < 0.01
    assert int(ds.y.sum()) == 40  # 0.2% of 20,000
    meta = ds.extra["transactions"]
    assert len(meta) == len(ds.y)
    assert (np.diff(meta["timestamp"].to_numpy()) >= 0).all()  # rows are in time order
    assert set(meta["pattern"]) == set(PATTERNS)
    assert ((meta["pattern"] != "none").to_numpy() == (ds.y == 1)).all()


def test_default_size_and_rate() -> None:
    ds = load("card_fraud")
    assert len(ds) == 50_000
    assert ds.y.mean() == pytest.approx(0.002)


def test_deterministic_under_seed() -> None:
    a = load("card_fraud", n_rows=3000, seed=7)
    b = load("card_fraud", n_rows=3000, seed=7)
    c = load("card_fraud", n_rows=3000, seed=8)
    pd.testing.assert_frame_equal(a.X, b.X)
    assert (a.y == b.y).all()
    assert not a.X.equals(c.X)


def test_fraud_patterns_have_their_signatures() -> None:
    X, y, meta = simulate(n_rows=100_000, seed=0, fraud_rate=0.005)
    legit = X[y == 0]
    testing = X[(meta["pattern"] == "card_testing").to_numpy()]
    takeover = X[(meta["pattern"] == "account_takeover").to_numpy()]
    skim = X[(meta["pattern"] == "merchant_compromise").to_numpy()]
    # card testing: online bursts of tiny amounts
    assert (testing["online"] == 1).all()
    assert (testing["amount"] <= 5).mean() > 0.7
    assert testing["tx_last_hour"].mean() > 5 * legit["tx_last_hour"].mean()
    # account takeover: online, mostly from a new device, far from home, large amounts
    assert (takeover["online"] == 1).all()
    assert takeover["new_device"].mean() > 0.7 > 0.05 > legit["new_device"].mean()
    assert takeover["amount"].median() > 5 * legit["amount"].median()
    # merchant compromise: cloned cards used in store in another city
    assert (skim["online"] == 0).all()
    assert (skim["distance_km"] > 50).all()
    assert legit["distance_km"].median() < 50


def test_velocity_features_match_timestamps() -> None:
    X, _, meta = simulate(n_rows=4000, seed=2)
    df = meta.assign(since=X["hours_since_prev"], last=X["tx_last_hour"])
    for _, g in df.groupby("customer_id"):
        ts = g["timestamp"].to_numpy()
        expect_since = np.r_[720.0, np.diff(ts) / 3600.0]
        assert np.allclose(g["since"].to_numpy(), np.minimum(expect_since, 720.0), atol=1e-3)
        # earlier transactions of the same card within the hour before this one
        expect_last = [int((ts[:i] >= t - 3600).sum()) for i, t in enumerate(ts)]
        assert g["last"].tolist() == expect_last


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_rows": 10}, r"'n_rows' parameter of card_fraud must be an int in \[1000, 20000000\]. Got 10"),
        ({"n_rows": "many"}, "'n_rows' parameter.*Got 'many'"),
        ({"n_rows": True}, "'n_rows' parameter"),
        ({"seed": -1}, "'seed' parameter of card_fraud must be an int >= 0. Got -1"),
        ({"fraud_rate": 0.5}, r"'fraud_rate' parameter of card_fraud must be a float in \(0, 0.1\]. Got 0.5"),
        ({"fraud_rate": 0}, "'fraud_rate' parameter"),
    ],
)
def test_bad_parameters(kwargs, match) -> None:
    with pytest.raises(ConfigError, match=match):
        load("card_fraud", **kwargs)


@pytest.mark.slow
def test_one_million_rows() -> None:
    X, y, _ = simulate(n_rows=1_000_000, seed=0)
    assert X.shape == (1_000_000, 13) and 0 < y.mean() < 0.01


@settings(max_examples=8, deadline=None, derandomize=True)
@given(n_rows=st.integers(1_000, 6_000), seed=st.integers(0, 2**31), rate=st.floats(1e-4, 0.1))
def test_any_size_seed_and_rate_gives_valid_rows(n_rows, seed, rate) -> None:
    X, y, meta = simulate(n_rows=n_rows, seed=seed, fraud_rate=rate)
    assert len(X) == len(y) == len(meta) == n_rows
    assert int(y.sum()) == max(3, round(n_rows * rate))
    assert set(meta.loc[y == 1, "pattern"]) == {"card_testing", "account_takeover", "merchant_compromise"}
    load("card_fraud", n_rows=1000).schema.check(X)
