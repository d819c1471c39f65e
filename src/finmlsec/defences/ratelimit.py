"""Per-client rate limits and query budgets: the paper's "gateway, rate limiting" countermeasure.

A :class:`QueryBudget` caps how many queries (records) one client may send per minute, per day and
over its lifetime. The counting state lives in a :class:`CounterStore`: :class:`MemoryCounterStore`
for one process, :class:`RedisCounterStore` when several server processes must enforce one budget
(the check and the increment of every window happen in one atomic Lua script). A refused request is
charged nothing and learns when to come back (``retry_after``, seconds; ``None`` when the lifetime
budget is spent).

The same object serves a scan: :meth:`QueryBudget.wrap` puts a fitted model behind the budget, a
:class:`BudgetedEstimator` that raises :class:`~finmlsec.errors.BudgetExceededError` when the
budget is spent, which is what an extraction or membership attack meets at the gateway.

Example:
    >>> budget = QueryBudget(per_minute=10, per_day=15)
    >>> store = MemoryCounterStore()
    >>> budget.consume(store, "client-a", cost=8, now=0.0).allowed
    True
    >>> d = budget.consume(store, "client-a", cost=5, now=1.0)
    >>> d.allowed, d.window, d.retry_after
    (False, 'minute', 59.0)
    >>> budget.consume(store, "client-a", cost=5, now=61.0).allowed
    True
    >>> budget.consume(store, "client-a", cost=5, now=122.0).window
    'day'
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from finmlsec.defences._params import Int, check_int
from finmlsec.defences.guards import GUARDS, Guard
from finmlsec.errors import BudgetExceededError, StoreError

WINDOWS: dict[str, float | None] = {"second": 1.0, "minute": 60.0, "day": 86400.0, "lifetime": None}


@dataclass(frozen=True)
class Limit:
    """At most ``limit`` units per window of ``seconds`` (``None``: ever)."""

    name: str
    seconds: float | None
    limit: int


@dataclass(frozen=True)
class BudgetDecision:
    """Outcome of one :meth:`QueryBudget.consume`: allowed, or which window refused and when the
    client may retry (seconds; ``None`` for the lifetime budget, which never refills)."""

    allowed: bool
    window: str | None = None
    limit: int | None = None
    retry_after: float | None = None


class CounterStore(Protocol):
    """Where counters and flags live. ``consume`` must be atomic over all windows."""

    def consume(self, key: str, limits: list[Limit], cost: int, now: float) -> BudgetDecision: ...

    def set_flag(self, key: str, value: str, ttl: float | None = None) -> None: ...

    def get_flag(self, key: str) -> str | None: ...

    def clear_flag(self, key: str) -> None: ...


_ALLOWED = BudgetDecision(True)


def _window_key(key: str, lim: Limit, now: float) -> tuple[str, float | None]:
    """The counter key of the current window and the seconds until it ends."""
    if lim.seconds is None:
        return f"{key}:{lim.name}", None
    idx = math.floor(now / lim.seconds)
    return f"{key}:{lim.name}:{idx}", (idx + 1) * lim.seconds - now


class MemoryCounterStore:
    """Fixed-window counters in this process (thread safe). Not shared between processes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, int]] = {}
        self._flags: dict[str, tuple[str, float | None]] = {}

    def consume(self, key: str, limits: list[Limit], cost: int, now: float) -> BudgetDecision:
        slots = []
        for lim in limits:
            idx = 0 if lim.seconds is None else math.floor(now / lim.seconds)
            left = None if lim.seconds is None else (idx + 1) * lim.seconds - now
            slots.append((f"{key}:{lim.name}", idx, left))
        with self._lock:
            counts = []
            for lim, (k, idx, left) in zip(limits, slots, strict=True):
                held = self._counts.get(k)
                used = held[1] if held is not None and held[0] == idx else 0
                if used + cost > lim.limit:
                    return BudgetDecision(False, lim.name, lim.limit, left)
                counts.append(used)
            for (k, idx, _), used in zip(slots, counts, strict=True):
                self._counts[k] = (idx, used + cost)  # one slot per client and window
        return BudgetDecision(True)

    def set_flag(self, key: str, value: str, ttl: float | None = None) -> None:
        with self._lock:
            self._flags[key] = (value, None if ttl is None else time.time() + ttl)

    def get_flag(self, key: str) -> str | None:
        with self._lock:
            item = self._flags.get(key)
        if item is None:
            return None
        value, until = item
        if until is not None and time.time() >= until:
            self.clear_flag(key)
            return None
        return value

    def clear_flag(self, key: str) -> None:
        with self._lock:
            self._flags.pop(key, None)


_LUA_CONSUME = """
local cost = tonumber(ARGV[1])
for i = 1, #KEYS do
  local lim = tonumber(ARGV[2 * i])
  local cur = tonumber(redis.call('GET', KEYS[i]) or '0')
  if cur + cost > lim then
    return i
  end
end
for i = 1, #KEYS do
  redis.call('INCRBY', KEYS[i], cost)
  local ttl = tonumber(ARGV[2 * i + 1])
  if ttl > 0 and redis.call('PTTL', KEYS[i]) < 0 then
    redis.call('PEXPIRE', KEYS[i], ttl)
  end
end
return 0
"""


class RedisCounterStore:
    """Fixed-window counters in Redis, shared by every server process that uses the same
    ``prefix``; each check-and-charge is one atomic Lua script."""

    def __init__(self, url: str, *, prefix: str = "finmlsec:") -> None:
        import redis

        self.prefix = prefix
        self._errors: tuple[type[Exception], ...] = (redis.RedisError,)
        self._redis = redis.Redis.from_url(url, socket_timeout=5.0)
        self._script = self._redis.register_script(_LUA_CONSUME)

    def _call(self, fn: Any, *args: Any, **kw: Any) -> Any:
        try:
            return fn(*args, **kw)
        except self._errors as exc:
            raise StoreError(
                f"the Redis counter store is unavailable ({type(exc).__name__}: {exc}); limits "
                "cannot be checked, so the request is refused; check the --redis server"
            ) from None

    def consume(self, key: str, limits: list[Limit], cost: int, now: float) -> BudgetDecision:
        keys, args = [], [cost]
        lefts = []
        for lim in limits:
            k, left = _window_key(key, lim, now)
            keys.append(self.prefix + k)
            lefts.append(left)
            args += [lim.limit, 0 if left is None else int(left * 1000) + 1000]
        refused = int(self._call(self._script, keys=keys, args=args))
        if refused:
            lim = limits[refused - 1]
            return BudgetDecision(False, lim.name, lim.limit, lefts[refused - 1])
        return BudgetDecision(True)

    def set_flag(self, key: str, value: str, ttl: float | None = None) -> None:
        self._call(self._redis.set, self.prefix + key, value,
                   px=None if ttl is None else int(ttl * 1000))

    def get_flag(self, key: str) -> str | None:
        v = self._call(self._redis.get, self.prefix + key)
        return None if v is None else (v.decode() if isinstance(v, bytes) else str(v))

    def clear_flag(self, key: str) -> None:
        self._call(self._redis.delete, self.prefix + key)

    def clear_prefix(self) -> int:
        """Delete every key under this store's prefix (tests, decommissioning); returns the count."""
        n = 0
        for k in self._redis.scan_iter(match=self.prefix + "*", count=500):
            n += int(self._redis.delete(k))
        return n


@GUARDS.register("ratelimit.query_budget")
class QueryBudget(Guard):
    """At most ``per_second`` / ``per_minute`` / ``per_day`` / ``lifetime`` queries per client
    (``None``: no limit on that window). Units are what the caller charges: records for a query
    budget, 1 per call for a request rate limit.

    Example:
        >>> QueryBudget(per_minute=100).limits()
        [Limit(name='minute', seconds=60.0, limit=100)]
    """

    countermeasure: ClassVar[str] = "gateway_rate_limiting"
    counters: ClassVar[frozenset[str]] = frozenset(
        {"dos_model_operator", "dos_training_data_provider", "infer_model"}
    )
    stage: ClassVar[str] = "gateway"
    summary: ClassVar[str] = "per-client query budgets per second, minute, day and lifetime"
    scanned: ClassVar[bool] = True
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "per_second": [Int(1), None], "per_minute": [Int(1), None], "per_day": [Int(1), None],
        "lifetime": [Int(1), None]}

    def __init__(
        self,
        *,
        per_second: int | None = None,
        per_minute: int | None = 1000,
        per_day: int | None = None,
        lifetime: int | None = None,
    ) -> None:
        self.per_second = per_second
        self.per_minute = per_minute
        self.per_day = per_day
        self.lifetime = lifetime

    def limits(self) -> list[Limit]:
        """The configured windows, validated, shortest first."""
        self.validate()
        out = []
        for name in ("per_second", "per_minute", "per_day", "lifetime"):
            value = getattr(self, name)
            if value is not None:
                window = name.removeprefix("per_")
                out.append(Limit(window, WINDOWS[window], int(value)))
        return out

    def consume(
        self, store: CounterStore, client: str, *, cost: int = 1, now: float | None = None,
        limits: list[Limit] | None = None,
    ) -> BudgetDecision:
        """Charge ``cost`` units to ``client`` if every window allows it; else charge nothing.
        ``limits``: this budget's :meth:`limits`, validated once by a caller that charges often
        (a server on every request); None validates them on each call."""
        check_int("QueryBudget", "cost", cost, 0)
        if limits is None:
            limits = self.limits()
        if not limits or cost == 0:
            return _ALLOWED
        return store.consume(f"budget:{client}", limits, cost, time.time() if now is None else now)

    def wrap(self, model: Any, X: Any = None) -> BudgetedEstimator:
        """The fitted ``model`` behind this budget, for one client (``X`` is not needed)."""
        self.limits()
        return BudgetedEstimator(model, budget=self)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.get_params().items() if v is not None)
        return f"QueryBudget({args})"


class BudgetedEstimator:
    """A fitted estimator that charges every record it answers to one client's budget and raises
    :class:`BudgetExceededError` once the budget would be overdrawn (nothing is answered then).

    Example:
        >>> from sklearn.linear_model import LogisticRegression
        >>> X = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0, 0, 1, 1])
        >>> m = QueryBudget(per_minute=None, lifetime=4).wrap(LogisticRegression().fit(X, y))
        >>> m.predict(X).tolist()
        [0, 0, 1, 1]
        >>> m.predict(X[:1])
        Traceback (most recent call last):
        ...
        finmlsec.errors.BudgetExceededError: query budget exhausted: 1 more record(s) would exceed the lifetime limit of 4; wait or ask the operator for a larger budget
    """

    def __init__(
        self,
        estimator: Any,
        *,
        budget: QueryBudget,
        client: str = "default",
        store: CounterStore | None = None,
    ) -> None:
        self.estimator = estimator
        self.budget = budget
        self.client = client
        self.store: CounterStore = store if store is not None else MemoryCounterStore()
        self.classes_ = getattr(estimator, "classes_", None)
        self.used = 0

    def _charge(self, X: Any) -> None:
        n = len(X)
        d = self.budget.consume(self.store, self.client, cost=n)
        if not d.allowed:
            wait = "" if d.retry_after is None else f" (retry in {d.retry_after:.0f} s)"
            raise BudgetExceededError(
                f"query budget exhausted: {n} more record(s) would exceed the {d.window} limit of "
                f"{d.limit}{wait}; wait or ask the operator for a larger budget",
                used=self.used,
                budget=d.limit or 0,
            )
        self.used += n

    def predict(self, X: Any) -> np.ndarray:
        self._charge(X)
        return np.asarray(self.estimator.predict(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        self._charge(X)
        return np.asarray(self.estimator.predict_proba(X))

