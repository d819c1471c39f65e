from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from finmlsec.datasets import load
from finmlsec.datasets.market_anomalies import KNOWN_EVENTS, features, prices
from finmlsec.errors import ConfigError


@pytest.fixture(scope="module")
def ds():
    return load("market_anomalies")


def test_shape_schema_and_provenance(ds) -> None:
    assert ds.task == "anomaly" and ds.kind == "tabular"
    assert ds.classes == ("normal", "anomaly")
    assert ds.X.shape == (4970, 8) and list(ds.X.columns) == ds.schema.names
    ds.schema.check(ds.X)
    assert 0.002 < ds.y.mean() < 0.02
    dates = ds.extra["dates"]
    assert len(dates) == len(ds.y) and dates.is_monotonic_increasing
    assert str(dates[-1].date()) == "2018-12-31"
    assert "arch" in ds.source and ds.license


def test_label_rule_recomputed_independently(ds) -> None:
    px = prices("sp500")
    close = px["Adj Close"].to_numpy()
    ret = 100 * np.log(close[1:] / close[:-1])
    pos = {d: i for i, d in enumerate(px.index[1:])}
    for date, lab in zip(ds.extra["dates"], ds.y, strict=True):
        i = pos[date]
        sd = np.std(ret[i - 60 : i], ddof=1)
        expect = abs(ret[i]) > 3.5 * sd or date.strftime("%Y-%m-%d") in KNOWN_EVENTS
        assert lab == int(expect), date


def test_known_events_are_anomalies(ds) -> None:
    dates = ds.extra["dates"].strftime("%Y-%m-%d")
    for day in KNOWN_EVENTS:
        assert ds.y[dates == day].tolist() == [1], day


def test_threshold_controls_rate() -> None:
    loose = load("market_anomalies", k=3.0).y.sum()
    strict = load("market_anomalies", k=5.0).y.sum()
    assert loose > 33 > strict >= len(KNOWN_EVENTS)


def test_features_do_not_look_ahead() -> None:
    px = prices("sp500")
    full = features(px)
    cut = features(px.iloc[:3000])
    pd.testing.assert_frame_equal(full.iloc[2900:3000], cut.iloc[2900:3000])


def test_nasdaq_zero_volume_days_dropped() -> None:
    ds = load("market_anomalies", index="nasdaq")
    ds.schema.check(ds.X)
    assert pd.Timestamp("2015-05-12") not in ds.extra["dates"]
    assert np.isfinite(ds.X.to_numpy()).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"index": "dax"}, r"'index' parameter of market_anomalies must be a str among \['nasdaq', 'sp500'\]. Got 'dax'"),
        ({"k": 0}, r"'k' parameter of market_anomalies must be a float in \[0.5, 20\]. Got 0"),
        ({"k": "4"}, "'k' parameter"),
        ({"window": 5}, r"'window' parameter of market_anomalies must be an int in \[10, 1000\]. Got 5"),
        ({"window": 60.0}, "'window' parameter"),
    ],
)
def test_bad_parameters(kwargs, match) -> None:
    with pytest.raises(ConfigError, match=match):
        load("market_anomalies", **kwargs)
