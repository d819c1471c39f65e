"""Query budgets and their counter stores (memory and Redis), as the gateway and a scan use them."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from finmlsec.defences import DEFENCES, GUARDS
from finmlsec.defences.ratelimit import (
    CounterStore,
    MemoryCounterStore,
    QueryBudget,
    RedisCounterStore,
)
from finmlsec.errors import BudgetExceededError, ConfigError


@pytest.fixture
def redis_store(redis_url: str) -> Iterator[RedisCounterStore]:
    store = RedisCounterStore(redis_url, prefix=f"finmlsec-test-{uuid.uuid4().hex[:10]}:")
    yield store
    store.clear_prefix()


def check_windows(store: CounterStore) -> None:
    b = QueryBudget(per_minute=10, per_day=25, lifetime=40)
    assert b.consume(store, "c", cost=10, now=0.0).allowed
    d = b.consume(store, "c", cost=1, now=30.0)
    assert (d.allowed, d.window, d.limit, d.retry_after) == (False, "minute", 10, 30.0)
    assert b.consume(store, "other", cost=10, now=30.0).allowed  # per client
    assert b.consume(store, "c", cost=10, now=60.0).allowed  # a new minute
    d = b.consume(store, "c", cost=10, now=120.0)  # 30 > 25 per day; nothing is charged
    assert (d.allowed, d.window) == (False, "day") and d.retry_after == 86400 - 120
    assert b.consume(store, "c", cost=5, now=121.0).allowed  # 25 today
    for day in (1, 2):
        assert b.consume(store, "c", cost=5, now=day * 86400.0).allowed
    d = b.consume(store, "c", cost=6, now=3 * 86400.0)  # 35 + 6 > 40 ever
    assert (d.allowed, d.window, d.retry_after) == (False, "lifetime", None)
    assert b.consume(store, "c", cost=5, now=3 * 86400.0).allowed
    assert not b.consume(store, "c", cost=1, now=9 * 86400.0).allowed


def test_memory_store_windows() -> None:
    check_windows(MemoryCounterStore())


@pytest.mark.redis
def test_redis_store_windows(redis_store: RedisCounterStore) -> None:
    check_windows(redis_store)


@pytest.mark.parametrize("kind", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
def test_concurrent_charges_never_overdraw(kind: str, request: pytest.FixtureRequest) -> None:
    store = MemoryCounterStore() if kind == "memory" else request.getfixturevalue("redis_store")
    b = QueryBudget(per_minute=None, per_day=100)
    granted = []

    def work() -> None:
        for _ in range(40):
            if b.consume(store, "c", cost=3, now=1000.0).allowed:
                granted.append(3)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == 99  # 33 charges of 3 fit in 100; no race lets a 34th through


@pytest.mark.parametrize("kind", ["memory", pytest.param("redis", marks=pytest.mark.redis)])
def test_flags(kind: str, request: pytest.FixtureRequest) -> None:
    store = MemoryCounterStore() if kind == "memory" else request.getfixturevalue("redis_store")
    assert store.get_flag("flag:k") is None
    store.set_flag("flag:k", "block")
    assert store.get_flag("flag:k") == "block"
    store.clear_flag("flag:k")
    assert store.get_flag("flag:k") is None


def test_budget_parameters_are_validated() -> None:
    with pytest.raises(ConfigError, match="'per_day' parameter of QueryBudget must be an int"):
        QueryBudget(per_day=0).limits()
    with pytest.raises(ConfigError, match="'cost' parameter"):
        QueryBudget().consume(MemoryCounterStore(), "c", cost=-1)
    assert QueryBudget(per_minute=None).consume(MemoryCounterStore(), "c", cost=5).allowed


def test_query_budget_as_a_scanned_guard() -> None:
    assert GUARDS.get("ratelimit.query_budget") is QueryBudget and QueryBudget.scanned
    assert "ratelimit.query_budget" not in DEFENCES
    assert QueryBudget.countermeasure == "gateway_rate_limiting" and QueryBudget.stage == "gateway"
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(int)
    before = X.copy()
    est = LogisticRegression().fit(X, y)
    m = QueryBudget(per_minute=None, lifetime=50).wrap(est)
    assert np.array_equal(X, before)  # inputs untouched
    assert m.predict_proba(X[:30]).shape == (30, 2) and m.predict(X[:20]).shape == (20,)
    with pytest.raises(BudgetExceededError, match="lifetime limit of 50") as exc:
        m.predict(X[:1])
    assert exc.value.used == 50 and exc.value.budget == 50


def test_unreachable_redis_is_a_store_error() -> None:
    from finmlsec.errors import StoreError

    store = RedisCounterStore("redis://127.0.0.1:1/0", prefix="x:")  # nothing listens on port 1
    with pytest.raises(StoreError, match="Redis counter store is unavailable"):
        QueryBudget(per_minute=5).consume(store, "c")
    with pytest.raises(StoreError):
        store.get_flag("flag:c")
