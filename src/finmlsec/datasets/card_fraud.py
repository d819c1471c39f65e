"""Card fraud: a seeded, vectorised simulator of card transactions with three fraud patterns.

The simulated world: customers with a home city, an age, an account age, a usual spending level
and an activity rate; merchants with a category, a city and a channel (in store or online);
30 days of transactions, mostly in the customer's own city and in the daytime. Fraud (the label,
``y=1``) follows three patterns documented in the fraud literature:

- ``card_testing``: a stolen card number is tried with a burst of tiny online payments a minute
  or so apart, sometimes followed by one large purchase;
- ``account_takeover``: an attacker logs in from a new device far from the customer's home and
  buys high-value goods (electronics, jewellery, travel, gift cards) online, several in an hour;
- ``merchant_compromise``: a skimmed merchant leaks the cards of customers who paid there; days
  later the cloned cards are used in store in other cities (cash, electronics, fuel).

The fraud rate is ``fraud_rate`` (default 0.2%, as in published card data; at least three fraud
rows, one per pattern, whatever the size). One million rows take a few seconds (everything is
numpy; the population grows with ``n_rows``: one customer per 50 rows, one merchant per 250). The model features are in ``X``; the columns every row
carries but a model should not use (``timestamp`` in seconds, ``customer_id``, ``merchant_id``,
the fraud ``pattern``) are in ``extra["transactions"]``, aligned with the full dataset.

Example:
    >>> from finmlsec.datasets import load
    >>> ds = load("card_fraud", n_rows=5000, seed=1)
    >>> ds.X.shape, ds.classes, float(ds.y.mean()) < 0.01
    ((5000, 13), ('legit', 'fraud'), True)
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from finmlsec.datasets._fraud_world import (
    CATEGORY_NAMES,
    CITIES,
    DAYS,
    HOME_CITIES,
    HOUR_P,
    MAX_AMOUNT,
    World,
    haversine,
)
from finmlsec.datasets.base import DATASETS, Dataset
from finmlsec.errors import ConfigError
from finmlsec.schema import Feature, FeatureSchema, FeatureType

CLASSES = ("legit", "fraud")
PATTERNS = ("none", "card_testing", "account_takeover", "merchant_compromise")
SCHEMA = FeatureSchema(
    features=(
        Feature(
            name="amount",
            type=FeatureType.NUMERIC,
            min=0.01,
            max=MAX_AMOUNT,
            cost=1.0,
            confidential=True,
            description="amount in EUR",
        ),
        Feature(
            name="hour",
            type=FeatureType.INTEGER,
            min=0,
            max=23,
            cost=0.5,
            quasi_identifier=True,  # the time of a purchase is known to whoever saw it
            description="local hour of the transaction",
        ),
        Feature(
            name="day_of_week",
            type=FeatureType.INTEGER,
            min=0,
            max=6,
            cost=0.5,
            quasi_identifier=True,  # the time of a purchase is known to whoever saw it
            description="0 = Monday",
        ),
        Feature(
            name="merchant_category",
            type=FeatureType.CATEGORICAL,
            categories=CATEGORY_NAMES,
            cost=2.0,
            description="merchant category",
        ),
        Feature(
            name="online",
            type=FeatureType.BINARY,
            cost=2.0,
            description="1 = card not present (online), 0 = in store",
        ),
        Feature(
            name="distance_km",
            type=FeatureType.NUMERIC,
            min=0.0,
            max=20_000.0,
            cost=3.0,
            description="distance of the store or of the device's IP location from home",
        ),
        Feature(
            name="foreign",
            type=FeatureType.BINARY,
            cost=3.0,
            description="1 = the place is in another country than the customer's home",
        ),
        Feature(
            name="new_device",
            type=FeatureType.BINARY,
            cost=5.0,
            description="1 = online payment from a device not seen before for this customer",
        ),
        Feature(
            name="customer_age",
            type=FeatureType.INTEGER,
            min=18,
            max=95,
            immutable=True,
            actionable=False,
            monotone="increasing",
            personal=True,
            confidential=True,
            cost=100.0,
            description="card holder's age in years",
        ),
        Feature(
            name="account_age_days",
            type=FeatureType.INTEGER,
            min=0,
            max=7300,
            immutable=True,
            actionable=False,
            monotone="increasing",
            cost=100.0,
            description="days since the account was opened",
        ),
        Feature(
            name="amount_vs_usual",
            type=FeatureType.NUMERIC,
            min=0.0,
            max=1000.0,
            cost=1.0,
            description="amount divided by the customer's usual amount (derived from amount)",
        ),
        Feature(
            name="hours_since_prev",
            type=FeatureType.NUMERIC,
            min=0.0,
            max=720.0,
            cost=1.0,
            description="hours since the card's previous transaction (720 if none)",
        ),
        Feature(
            name="tx_last_hour",
            type=FeatureType.INTEGER,
            min=0,
            max=100,
            cost=1.0,
            description="the card's transactions in the preceding hour",
        ),
    ),
    target="is_fraud",
    classes=CLASSES,
    positive_class="fraud",
    favourable_class="legit",
)


def _check_params(n_rows: Any, seed: Any, fraud_rate: Any) -> None:
    if (
        isinstance(n_rows, bool)
        or not isinstance(n_rows, numbers.Integral)
        or not (1_000 <= int(n_rows) <= 20_000_000)
    ):
        raise ConfigError(
            "The 'n_rows' parameter of card_fraud must be an int in [1000, 20000000]. "
            f"Got {n_rows!r} instead."
        )
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or int(seed) < 0:
        raise ConfigError(
            f"The 'seed' parameter of card_fraud must be an int >= 0. Got {seed!r} instead."
        )
    if (
        isinstance(fraud_rate, bool)
        or not isinstance(fraud_rate, numbers.Real)
        or not (0.0 < float(fraud_rate) <= 0.1)
    ):
        raise ConfigError(
            "The 'fraud_rate' parameter of card_fraud must be a float in (0, 0.1]. "
            f"Got {fraud_rate!r} instead."
        )


_Block = dict[str, np.ndarray]


class _Pool(NamedTuple):
    """The customers a simulation draws from (all: their number) and their activity weights."""

    customers: Any
    activity: np.ndarray


def _legit(rng: np.random.Generator, w: World, n: int, pool: _Pool) -> _Block:
    c = rng.choice(pool.customers, size=n, p=pool.activity)
    travel = rng.random(n) < 0.12
    city = np.where(travel, rng.choice(len(CITIES), size=n, p=w.city_weights()), w.c_city[c])
    m = w.merchant_in(rng, city)
    cat = w.m_cat[m]
    # clothing and electronics are also bought in web shops
    web = np.isin(cat, [CATEGORY_NAMES.index("clothing"), CATEGORY_NAMES.index("electronics")])
    online = w.cat_online[cat] | (web & (rng.random(n) < 0.3))
    day = rng.integers(0, DAYS, n)
    hour = rng.choice(24, size=n, p=HOUR_P)
    amount = w.c_spend[c] * w.cat_mult[cat] * np.exp(rng.normal(0.0, 0.6, n))
    # online payments come from the customer's own IP (home, or the city they travel to)
    place = np.where(online & ~travel, w.c_city[c], city)
    return {
        "customer": c,
        "merchant": m,
        "online": online,
        "ts": day * 86400.0 + hour * 3600.0 + rng.uniform(0, 3600, n),
        "amount": amount,
        "place": place,
        "new_device": online & (rng.random(n) < 0.02),
        "pattern": np.zeros(n, dtype=np.int64),
    }


def _episodes(
    rng: np.random.Generator, quota: int, lo: int, hi: int
) -> tuple[np.ndarray, np.ndarray]:
    """Episode index of each of ``quota`` fraud rows, and the row's position in its episode."""
    sizes = rng.integers(lo, hi + 1, size=quota // lo + 1)
    ep = np.repeat(np.arange(len(sizes)), sizes)[:quota]
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    return ep, np.arange(quota) - starts[ep]


def _far_city(rng: np.random.Generator, home: np.ndarray) -> np.ndarray:
    """A city other than ``home``, foreign half of the time."""
    foreign = rng.choice(np.arange(HOME_CITIES, len(CITIES)), size=len(home))
    domestic = (home + rng.integers(1, HOME_CITIES, size=len(home))) % HOME_CITIES
    return np.where(rng.random(len(home)) < 0.5, foreign, domestic)


def _card_testing(rng: np.random.Generator, w: World, q: int, pool: _Pool) -> _Block:
    ep, pos = _episodes(rng, q, 3, 10)
    ne = int(ep.max()) + 1 if q else 0
    victim = rng.choice(pool.customers, size=ne, p=pool.activity)
    c = victim[ep]
    start = rng.uniform(0, DAYS * 86400 - 3600, ne)[ep]
    gaps = rng.exponential(40.0, q) + 5.0
    last = np.r_[ep[1:] != ep[:-1], True]
    big = last & (rng.random(q) < 0.4)
    amount = np.where(big, np.exp(rng.normal(np.log(400.0), 0.5, q)), rng.uniform(0.5, 5.0, q))
    return {
        "customer": c,
        "merchant": rng.choice(w.merchants_of(("digital_goods", "online_retail", "gift_cards")), q),
        "online": np.ones(q, dtype=bool),
        "ts": start + pos * 60.0 + gaps,
        "amount": amount,
        "place": _far_city(rng, w.c_city[victim])[ep],
        "new_device": (rng.random(ne) < 0.6)[ep],
        "pattern": np.full(q, 1, dtype=np.int64),
    }


def _account_takeover(rng: np.random.Generator, w: World, q: int, pool: _Pool) -> _Block:
    ep, pos = _episodes(rng, q, 2, 6)
    ne = int(ep.max()) + 1 if q else 0
    victim = rng.choice(pool.customers, size=ne)
    c = victim[ep]
    start = rng.uniform(0, DAYS * 86400 - 7200, ne)[ep]
    place = _far_city(rng, w.c_city[victim])[ep]
    m = rng.choice(
        w.merchants_of(("electronics", "jewellery", "travel", "gift_cards", "online_retail")), q
    )
    amount = np.maximum(
        w.c_spend[c] * rng.uniform(4, 20, q), np.exp(rng.normal(np.log(450.0), 0.7, q))
    )
    return {
        "customer": c,
        "merchant": m,
        "online": np.ones(q, dtype=bool),
        "ts": start + pos * rng.exponential(600.0, q),
        "amount": amount,
        "place": place,
        "new_device": (rng.random(ne) < 0.85)[ep],
        "pattern": np.full(q, 2, dtype=np.int64),
    }


def _merchant_compromise(rng: np.random.Generator, w: World, q: int, legit: _Block) -> _Block:
    ep, pos = _episodes(rng, q, 1, 4)
    ne = int(ep.max()) + 1 if q else 0
    k = max(2, w.n_merchants // 200)
    leaky = rng.choice(
        w.merchants_of(("fuel", "restaurant", "grocery", "atm_cash")), size=k, replace=False
    )
    visits = np.flatnonzero(np.isin(legit["merchant"], leaky) & ~legit["online"])
    if len(visits) == 0:  # tiny worlds: any in-store visit leaks
        visits = np.flatnonzero(~legit["online"])
    v = rng.choice(visits, size=ne)
    c = legit["customer"][v][ep]
    horizon = DAYS * 86400.0
    start = np.minimum(legit["ts"][v] + rng.uniform(1, 10, ne) * 86400.0, horizon - 86400.0)[ep]
    city = _far_city(rng, w.c_city[legit["customer"][v]])[ep]
    return {
        "customer": c,
        "merchant": w.instore_in(rng, city),
        "online": np.zeros(q, dtype=bool),
        "ts": start + pos * rng.exponential(3 * 3600.0, q),
        "amount": np.exp(rng.normal(np.log(300.0), 0.6, q)),
        "place": city,
        "new_device": np.zeros(q, dtype=bool),
        "pattern": np.full(q, 3, dtype=np.int64),
    }


def simulate(
    n_rows: int = 50_000, seed: int = 0, fraud_rate: float = 0.002
) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """``(X, y, transactions)`` for ``n_rows`` transactions in time order (see module docs)."""
    _check_params(n_rows, seed, fraud_rate)
    rng = np.random.default_rng(seed)
    w = World(rng, n_rows)
    return _simulate_pool(rng, w, n_rows, fraud_rate, _Pool(w.n_customers, w.c_activity))


def simulate_parts(
    n_rows: int, seed: int = 0, fraud_rate: float = 0.002, part_rows: int = 1_000_000
) -> Iterator[tuple[pd.DataFrame, np.ndarray, pd.DataFrame]]:
    """``simulate`` in parts of about ``part_rows`` rows each, one at a time (memory bounded by a
    part, whatever ``n_rows``): one world (customers, merchants) for all ``n_rows``, its
    customers dealt into parts (customer ``c`` in part ``c % parts``), each part simulated with
    its own seeded generator and in time order. A card's history lies in one part, so the
    per-card features (``hours_since_prev``, ``tx_last_hour``) are exact. One part (``n_rows <=
    part_rows``) is :func:`simulate` itself. Each part holds at least three frauds.

    Example:
        >>> sizes = [len(y) for _, y, _ in simulate_parts(5000, seed=1, part_rows=2000)]
        >>> len(sizes), sum(sizes)
        (3, 5000)
    """
    if isinstance(n_rows, numbers.Integral) and not isinstance(n_rows, bool) and n_rows > 20_000_000:
        _check_params(20_000_000, seed, fraud_rate)  # the other parameters; any size in parts
        if n_rows > MAX_PARTS_ROWS:
            raise ConfigError(f"The 'n_rows' parameter of card_fraud parts must be at most "
                              f"{MAX_PARTS_ROWS:,}. Got {n_rows!r} instead.")
    else:
        _check_params(n_rows, seed, fraud_rate)
    if isinstance(part_rows, bool) or not isinstance(part_rows, numbers.Integral) \
            or part_rows < 1_000:
        raise ConfigError(f"The 'part_rows' parameter of card_fraud must be an int >= 1000. "
                          f"Got {part_rows!r} instead.")
    parts = -(-int(n_rows) // int(part_rows))
    if parts == 1:
        yield simulate(n_rows, seed, fraud_rate)
        return
    rng = np.random.default_rng(seed)
    w = World(rng, int(n_rows))
    part_of = np.arange(w.n_customers) % parts
    mass = np.bincount(part_of, weights=w.c_activity, minlength=parts)
    sizes = np.floor(mass / mass.sum() * n_rows).astype(np.int64)
    sizes[: int(n_rows) - int(sizes.sum())] += 1
    for k in range(parts):
        customers = np.flatnonzero(part_of == k)
        act = w.c_activity[customers]
        yield _simulate_pool(np.random.default_rng([seed, k + 1]), w, int(sizes[k]), fraud_rate,
                             _Pool(customers, act / act.sum()))


#: the largest simulation :func:`simulate_parts` writes (one world: 2,000,000 customers)
MAX_PARTS_ROWS = 100_000_000


def _simulate_pool(
    rng: np.random.Generator, w: World, n_rows: int, fraud_rate: float, pool: _Pool
) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    n_fraud = max(3, round(n_rows * fraud_rate))
    q1, q2 = max(1, int(n_fraud * 0.4)), max(1, int(n_fraud * 0.3))  # every pattern occurs
    legit = _legit(rng, w, n_rows - n_fraud, pool)
    blocks = [
        legit,
        _card_testing(rng, w, q1, pool),
        _account_takeover(rng, w, q2, pool),
        _merchant_compromise(rng, w, n_fraud - q1 - q2, legit),
    ]
    t = {k: np.concatenate([b[k] for b in blocks]) for k in legit}
    t["ts"] = np.clip(np.floor(t["ts"]), 0, DAYS * 86400 - 1).astype(np.int64)
    order = np.lexsort((t["ts"], t["customer"]))  # per card, in time
    t = {k: v[order] for k, v in t.items()}
    cols = _features(rng, w, t)
    chrono = np.argsort(t["ts"], kind="stable")
    cols = {k: v[chrono] for k, v in cols.items()}
    cols["merchant_category"] = np.asarray(CATEGORY_NAMES, dtype=object)[cols["merchant_category"]]
    meta = pd.DataFrame(
        {
            "timestamp": t["ts"][chrono],
            "customer_id": t["customer"][chrono],
            "merchant_id": t["merchant"][chrono],
            "pattern": np.asarray(PATTERNS, dtype=object)[t["pattern"][chrono]],
        }
    )
    return pd.DataFrame(cols), (t["pattern"][chrono] > 0).astype(np.int64), meta


def _features(rng: np.random.Generator, w: World, t: _Block) -> dict[str, np.ndarray]:
    """The model features of transactions sorted by (customer, time); category as a code."""
    c, ts, online = t["customer"], t["ts"], t["online"]
    same = np.r_[False, c[1:] == c[:-1]]
    since = np.where(same, np.diff(ts, prepend=0) / 3600.0, 720.0)
    key = c * 10_000_000 + ts
    last_hour = np.arange(len(key)) - np.searchsorted(key, key - 3600, side="left")
    jitter_lat, jitter_lon = rng.normal(0, 0.05, len(c)), rng.normal(0, 0.08, len(c))
    p_lat = np.where(online, w.city_lat[t["place"]] + jitter_lat, w.m_lat[t["merchant"]])
    p_lon = np.where(online, w.city_lon[t["place"]] + jitter_lon, w.m_lon[t["merchant"]])
    place_city = np.where(online, t["place"], w.m_city[t["merchant"]])
    amount = np.clip(np.round(t["amount"], 2), 0.5, MAX_AMOUNT)
    return {
        "amount": amount,
        "hour": (ts % 86400) // 3600,
        "day_of_week": (ts // 86400) % 7,
        "merchant_category": w.m_cat[t["merchant"]],
        "online": online.astype(np.int64),
        "distance_km": np.round(haversine(w.c_lat[c], w.c_lon[c], p_lat, p_lon), 1),
        "foreign": (w.city_country[place_city] != w.city_country[w.c_city[c]]).astype(np.int64),
        "new_device": t["new_device"].astype(np.int64),
        "customer_age": w.c_age[c],
        "account_age_days": w.c_account_age[c],
        "amount_vs_usual": np.round(np.clip(amount / w.c_spend[c], 0.0, 1000.0), 3),
        "hours_since_prev": np.round(np.minimum(since, 720.0), 3),
        "tx_last_hour": np.minimum(last_hour, 100),
    }


@DATASETS.register("card_fraud")
def card_fraud(n_rows: int = 50_000, seed: int = 0, fraud_rate: float = 0.002) -> Dataset:
    """Simulated card transactions (``n_rows``, seeded), y=1 for fraud; see the module docs."""
    X, y, meta = simulate(n_rows=n_rows, seed=seed, fraud_rate=fraud_rate)
    return Dataset(
        name="card_fraud",
        X=X,
        y=y,
        classes=CLASSES,
        kind="tabular",
        schema=SCHEMA,
        description=(
            f"Card fraud: {len(y):,} simulated card transactions over {DAYS} days, "
            f"{int(y.sum())} fraudulent ({y.mean():.2%}): card testing, account takeover, "
            "merchant compromise"
        ),
        source="simulated by finmlsec (finmlsec.datasets.card_fraud, seeded numpy simulator)",
        license="Apache-2.0 (part of finmlsec); synthetic, no real customer data",
        citation="",
        extra={
            "transactions": meta,
            "seed": seed,
            "fraud_rate": fraud_rate,
            "patterns": PATTERNS[1:],
        },
    )


def write_parquet(
    out: Any, n_rows: int, seed: int = 0, fraud_rate: float = 0.002,
    part_rows: int = 500_000,
) -> dict[str, Any]:
    """Write ``n_rows`` simulated transactions to the directory ``out`` as Parquet, one file per
    part of :func:`simulate_parts` (``part-00000.parquet``, ...; memory bounded by a part, about
    600 MB for a million rows): the model features and the label column ``is_fraud`` (class
    names, ``legit``/``fraud``). Returns the rows, frauds and files written.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> info = write_parquet(d / "tx", 3000, seed=1, part_rows=1000)
        >>> info["rows"], len(info["files"])
        (3000, 3)
    """
    from pathlib import Path

    from finmlsec.extras import require

    pq = require("pyarrow.parquet", "writing Parquet")
    pa = require("pyarrow", "writing Parquet")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stale = sorted(out.glob("part-*.parquet"))
    if stale:
        raise ConfigError(f"{str(out)!r} already holds Parquet parts ({stale[0].name}, ...); "
                          "write into an empty directory")
    files, rows, frauds = [], 0, 0
    for k, (X, y, _meta) in enumerate(simulate_parts(n_rows, seed, fraud_rate, part_rows)):
        X = X.copy()
        X[SCHEMA.target] = np.asarray(CLASSES, dtype=object)[y]
        table = pa.Table.from_pandas(X, preserve_index=False)
        path = out / f"part-{k:05d}.parquet"
        pq.write_table(table, path, row_group_size=100_000)
        files.append(path.name)
        rows, frauds = rows + len(y), frauds + int(y.sum())
        del X, y, table
    return {"rows": rows, "frauds": frauds, "files": files, "seed": seed,
            "fraud_rate": fraud_rate}
