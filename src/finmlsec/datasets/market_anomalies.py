"""Market anomaly detection: real daily index data with anomalous days labelled by a stated rule.

The prices are the daily S&P 500 or NASDAQ Composite series (open, high, low, close, adjusted
close, volume; 4 January 1999 to 31 December 2018) that the ``arch`` package ships
(``arch.data.sp500`` / ``arch.data.nasdaq``), read offline.

Features of day *t* use only data up to and including day *t*: ``ret`` (log return of the adjusted
close, %), ``gap`` (open against the previous close, %), ``range_pct`` (high minus low against the
previous close, %), ``vol_20`` (standard deviation of the 20 previous returns), ``vol_ratio``
(volatility of the last 5 days over ``vol_20``), ``volume_change`` (log of the volume over the
mean volume of the 20 previous days), ``ret_5d`` (5-day return, %) and ``drawdown`` (close against
the highest close of the last 252 days, %).

Label (``anomaly`` = 1) by a documented rule: the day's return is more than ``k`` standard
deviations of the ``window`` previous daily returns away from zero (``|ret_t| > k * sd(ret_{t-window
.. t-1})``; default k=3.5, window=60), or the day is one of the :data:`KNOWN_EVENTS` (market stress
days named in the financial press). The first ``window`` days, which lack a history, are dropped, and so are days whose volume is
recorded as zero (two data gaps in the NASDAQ series).

Example:
    >>> from finmlsec.datasets import load
    >>> ds = load("market_anomalies")
    >>> ds.X.shape[1], ds.task, ds.classes, 0 < float(ds.y.mean()) < 0.02
    (8, 'anomaly', ('normal', 'anomaly'), True)
    >>> str(ds.extra["dates"][0].date()), int(ds.y[ds.extra["dates"] == "2010-05-06"][0])
    ('1999-04-01', 1)
"""

from __future__ import annotations

import importlib.util
import numbers
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from finmlsec.datasets.base import DATASETS, Dataset
from finmlsec.errors import ConfigError, DataError
from finmlsec.schema import Feature, FeatureSchema, FeatureType

CLASSES = ("normal", "anomaly")
INDICES = {"sp500": "S&P 500", "nasdaq": "NASDAQ Composite"}

KNOWN_EVENTS: dict[str, str] = {
    "2001-09-17": "markets reopen after the 11 September attacks",
    "2008-09-29": "the US House rejects the first bank rescue plan (TARP)",
    "2008-10-13": "record one-day rise after coordinated bank rescue plans",
    "2008-10-15": "renewed crash during the global financial crisis",
    "2010-05-06": "the Flash Crash",
    "2011-08-08": "first trading day after the US credit rating downgrade",
    "2015-08-24": "global sell-off led by Chinese markets",
    "2016-06-24": "result of the UK's EU membership referendum",
    "2018-02-05": "volatility spike ('Volmageddon')",
}


def _num(name: str, lo: float, hi: float, description: str, **kw: Any) -> Feature:
    return Feature(
        name=name, type=FeatureType.NUMERIC, min=lo, max=hi, description=description, **kw
    )


# A market participant can push today's prints (price, gap, range, volume) at a high cost; the
# trailing statistics are history. Public market data: nothing personal or confidential.
SCHEMA = FeatureSchema(
    features=(
        _num("ret", -30, 30, "log return of the adjusted close, %", cost=10.0),
        _num("gap", -30, 30, "open against the previous close, %", cost=10.0),
        _num("range_pct", 0, 50, "high minus low against the previous close, %", cost=10.0),
        _num("vol_20", 0, 20, "sd of the 20 previous returns, %", actionable=False, cost=100.0),
        _num(
            "vol_ratio", 0, 20, "sd of the last 5 returns over vol_20", actionable=False, cost=100.0
        ),
        _num("volume_change", -5, 5, "log volume over the mean of the 20 previous days", cost=5.0),
        _num("ret_5d", -60, 60, "return over the last 5 days, %", actionable=False, cost=100.0),
        _num(
            "drawdown", -100, 0, "close against the 252-day high, %", actionable=False, cost=100.0
        ),
    ),
    target="anomaly",
    classes=CLASSES,
    positive_class="anomaly",
    favourable_class="normal",
)


def _check_params(index: Any, k: Any, window: Any) -> None:
    if index not in INDICES:
        raise ConfigError(
            f"The 'index' parameter of market_anomalies must be a str among {sorted(INDICES)}. "
            f"Got {index!r} instead."
        )
    if isinstance(k, bool) or not isinstance(k, numbers.Real) or not 0.5 <= float(k) <= 20:
        raise ConfigError(
            f"The 'k' parameter of market_anomalies must be a float in [0.5, 20]. Got {k!r} instead."
        )
    if (
        isinstance(window, bool)
        or not isinstance(window, numbers.Integral)
        or not 10 <= int(window) <= 1000
    ):
        raise ConfigError(
            "The 'window' parameter of market_anomalies must be an int in [10, 1000]. "
            f"Got {window!r} instead."
        )


def prices(index: str = "sp500") -> pd.DataFrame:
    """The raw daily prices shipped by ``arch`` (DatetimeIndex; Open, High, Low, Close, ...).

    The ``csv.gz`` file is read directly from the installed package (importing ``arch`` itself
    would load its whole modelling stack)."""
    _check_params(index, 3.5, 60)
    spec = importlib.util.find_spec("arch")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"market_anomalies reads the {INDICES[index]} series shipped by the 'arch' package, "
            "which is not installed; run `pip install arch`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / index / f"{index}.csv.gz"
    if not path.is_file():
        raise DataError(f"the 'arch' package is installed but {path} is missing; reinstall arch")
    frame = pd.read_csv(path)
    missing = {"Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"} - set(frame.columns)
    if missing:
        raise DataError(f"{path} lacks the column(s) {sorted(missing)}")
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("Date"), format="%m/%d/%Y"))
    frame.index.name = "Date"
    return frame.apply(pd.to_numeric, errors="coerce").sort_index()


def features(px: pd.DataFrame) -> pd.DataFrame:
    """The feature table of :data:`SCHEMA` for a price frame (first rows have NaN history)."""
    close, prev = px["Adj Close"], px["Adj Close"].shift(1)
    scale = close / px["Close"].replace(0, np.nan)  # dividend/split adjustment of O/H/L
    ret = 100 * np.log(close / prev)
    vol_20 = ret.rolling(20).std().shift(1)
    volume = px["Volume"].astype(float).where(px["Volume"] > 0)  # a zero volume is a data gap
    return pd.DataFrame(
        {
            "ret": ret,
            "gap": 100 * np.log(px["Open"] * scale / prev),
            "range_pct": 100 * (px["High"] - px["Low"]) * scale / prev,
            "vol_20": vol_20,
            "vol_ratio": ret.rolling(5).std() / vol_20,
            "volume_change": np.log(volume / volume.rolling(20, min_periods=15).mean().shift(1)),
            "ret_5d": 100 * np.log(close / close.shift(5)),
            "drawdown": 100 * (close / close.rolling(252, min_periods=1).max() - 1),
        },
        index=px.index,
    )


def label(px: pd.DataFrame, *, k: float = 3.5, window: int = 60) -> pd.Series:
    """1 where ``|ret_t| > k * sd(previous window returns)`` or on a known event date, else 0."""
    ret = 100 * np.log(px["Adj Close"] / px["Adj Close"].shift(1))
    sigma = ret.rolling(window).std().shift(1)
    rule = (ret.abs() > k * sigma).fillna(False)
    event = px.index.strftime("%Y-%m-%d").isin(list(KNOWN_EVENTS))
    return (rule.to_numpy() | event).astype(np.int64)


@DATASETS.register("market_anomalies")
def market_anomalies(index: str = "sp500", k: float = 3.5, window: int = 60) -> Dataset:
    """Daily features of a real index, y=1 on anomalous days (see the module docs for the rule)."""
    _check_params(index, k, window)
    px = prices(index)
    X = features(px)
    y = pd.Series(label(px, k=float(k), window=int(window)), index=px.index)
    keep = X.notna().all(axis=1).to_numpy().copy()
    keep[: int(window) + 1] = False  # no label before a full window of history
    X, y = X[keep], y[keep]
    dates = pd.DatetimeIndex(X.index)
    X = X.reset_index(drop=True)
    return Dataset(
        name="market_anomalies",
        X=X,
        y=y.to_numpy(),
        classes=CLASSES,
        kind="tabular",
        schema=SCHEMA,
        task="anomaly",
        description=(
            f"Market anomalies: {len(X):,} trading days of the {INDICES[index]} "
            f"({dates[0].date()} to {dates[-1].date()}), {int(y.sum())} anomalous days "
            f"(|return| > {k:g} sd of the {window} previous days, or a known stress event)"
        ),
        source=f"{INDICES[index]} daily prices shipped with the 'arch' package (arch.data.{index})",
        license="arch: NCSA (University of Illinois/NCSA Open Source License); public market data",
        citation="Sheppard, K. et al. arch: ARCH models in Python (arch.data example data sets)",
        extra={"dates": dates, "index": index, "k": k, "window": window, "events": KNOWN_EVENTS},
    )
