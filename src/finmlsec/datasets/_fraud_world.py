"""The simulated world of :mod:`finmlsec.datasets.card_fraud`: places, merchant categories,
customers and merchants (drawn once per seed)."""

from __future__ import annotations

import numpy as np

DAYS = 30
MAX_AMOUNT = 20_000.0

# (name, latitude, longitude, country)
CITIES = (
    ("Berlin", 52.52, 13.40, "DE"),
    ("Hamburg", 53.55, 9.99, "DE"),
    ("Munich", 48.14, 11.58, "DE"),
    ("Cologne", 50.94, 6.96, "DE"),
    ("Frankfurt", 50.11, 8.68, "DE"),
    ("Stuttgart", 48.78, 9.18, "DE"),
    ("Leipzig", 51.34, 12.37, "DE"),
    ("Paris", 48.86, 2.35, "FR"),
    ("Amsterdam", 52.37, 4.90, "NL"),
    ("Vienna", 48.21, 16.37, "AT"),
    ("Zurich", 47.38, 8.54, "CH"),
    ("London", 51.51, -0.13, "GB"),
    ("Madrid", 40.42, -3.70, "ES"),
    ("Warsaw", 52.23, 21.01, "PL"),
    ("New York", 40.71, -74.01, "US"),
    ("Lagos", 6.52, 3.38, "NG"),
    ("Moscow", 55.76, 37.62, "RU"),
    ("Singapore", 1.35, 103.82, "SG"),
)
HOME_CITIES = 7  # customers live in the German cities; the rest are travel / attacker places
# category: (share of merchants, amount multiplier, online)
CATEGORIES = {
    "grocery": (0.22, 1.0, False),
    "restaurant": (0.16, 0.9, False),
    "fuel": (0.10, 1.4, False),
    "pharmacy": (0.06, 0.6, False),
    "clothing": (0.10, 1.8, False),
    "atm_cash": (0.06, 3.0, False),
    "electronics": (0.06, 5.0, False),
    "jewellery": (0.02, 8.0, False),
    "online_retail": (0.12, 1.5, True),
    "digital_goods": (0.05, 0.4, True),
    "travel": (0.04, 9.0, True),
    "gift_cards": (0.01, 2.5, True),
}
CATEGORY_NAMES = tuple(CATEGORIES)
HOUR_P = np.array(
    [1, 0.6, 0.4, 0.3, 0.3, 0.5, 1.2, 2.5, 4, 5, 5.5, 6, 7, 6.5, 6, 6, 6.5, 7, 7, 6.5, 5, 4, 3, 1.8]
)
HOUR_P = HOUR_P / HOUR_P.sum()


def haversine(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(lon2 - lon1)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * 6371.0 * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


class World:
    """Customers and merchants, drawn once per (n_rows, seed)."""

    def __init__(self, rng: np.random.Generator, n_rows: int) -> None:
        nc, nm = max(200, n_rows // 50), max(len(CITIES) * 4, n_rows // 250)
        city = np.asarray(CITIES, dtype=object)
        self.city_lat = city[:, 1].astype(float)
        self.city_lon = city[:, 2].astype(float)
        self.city_country = city[:, 3].astype(str)
        home_w = np.array([6, 3, 3, 2, 2, 1.5, 1.0])
        self.c_city = rng.choice(HOME_CITIES, size=nc, p=home_w / home_w.sum())
        self.c_lat = self.city_lat[self.c_city] + rng.normal(0, 0.05, nc)
        self.c_lon = self.city_lon[self.c_city] + rng.normal(0, 0.08, nc)
        self.c_age = np.clip(rng.normal(45, 16, nc), 18, 95).astype(np.int64)
        self.c_account_age = np.minimum(rng.exponential(1500, nc), 7300).astype(np.int64)
        self.c_spend = np.exp(rng.normal(np.log(35.0), 0.45, nc))
        self.c_activity = rng.gamma(2.0, 1.0, nc)
        self.c_activity /= self.c_activity.sum()
        share = np.array([v[0] for v in CATEGORIES.values()])
        self.cat_mult = np.array([v[1] for v in CATEGORIES.values()])
        self.cat_online = np.array([v[2] for v in CATEGORIES.values()])
        self.m_cat = rng.choice(len(CATEGORIES), size=nm, p=share / share.sum())
        # every city has merchants; most are in the home cities; merchants sorted by city
        m_city = np.concatenate(
            [
                np.arange(len(CITIES)),
                rng.choice(len(CITIES), size=nm - len(CITIES), p=self.city_weights()),
            ]
        )
        self.m_cat[: len(CITIES)] = CATEGORY_NAMES.index("atm_cash")  # a cash machine everywhere
        order = np.argsort(m_city, kind="stable")
        self.m_city = m_city[order]
        self.m_cat = self.m_cat[order]
        self.m_lat = self.city_lat[self.m_city] + rng.normal(0, 0.05, nm)
        self.m_lon = self.city_lon[self.m_city] + rng.normal(0, 0.08, nm)
        self.city_start = np.searchsorted(self.m_city, np.arange(len(CITIES)))
        self.city_count = np.bincount(self.m_city, minlength=len(CITIES))
        self.instore = np.flatnonzero(~self.cat_online[self.m_cat])  # still sorted by city
        self.instore_start = np.searchsorted(self.m_city[self.instore], np.arange(len(CITIES)))
        self.instore_count = np.bincount(self.m_city[self.instore], minlength=len(CITIES))
        self.n_customers, self.n_merchants = nc, nm

    @staticmethod
    def city_weights() -> np.ndarray:
        w = np.r_[np.array([6, 3, 3, 2, 2, 1.5, 1.0]) * 3, np.ones(len(CITIES) - HOME_CITIES)]
        return w / w.sum()

    def merchant_in(self, rng: np.random.Generator, city: np.ndarray) -> np.ndarray:
        return self.city_start[city] + (rng.random(len(city)) * self.city_count[city]).astype(
            np.int64
        )

    def instore_in(self, rng: np.random.Generator, city: np.ndarray) -> np.ndarray:
        pos = self.instore_start[city] + (rng.random(len(city)) * self.instore_count[city])
        return self.instore[pos.astype(np.int64)]

    def merchants_of(self, cats: tuple[str, ...]) -> np.ndarray:
        ids = np.flatnonzero(np.isin(self.m_cat, [CATEGORY_NAMES.index(c) for c in cats]))
        return ids if len(ids) else np.arange(self.n_merchants)
