"""Limits that survive a restart: budgets, blocks and the extraction detector's state.

Without Redis, day and lifetime budgets and blocks live in the gateway's database
(:class:`SqlCounterStore` behind :class:`DurableCounterStore`: SQLite for one process, PostgreSQL
for several), so a spent lifetime budget stays spent and a block for extraction stays on after
SIGTERM or SIGKILL (SQLite commits in WAL mode, which a killed process cannot undo); request
rates (windows up to an hour) are counted in memory. With Redis they live in Redis, which must persist (:func:`check_redis_persistence`:
the gateway refuses a Redis that neither appends (AOF) nor snapshots, unless told to accept it).

PRADA's state per client is a deterministic function of the client's queries in order, so the
gateway keeps the queries (encoded, with their predicted class) in a shared per-client log (a
Redis stream, or a table) and every replica replays what it has not seen into its local state
before judging: all replicas judge the same sequence, and a restarted one rebuilds the state from
the log. The log keeps the latest ``keep`` requests per client (PRADA looks at its latest
``window`` distances and a growing set of at most ``max_stored`` members per class). A query
repeating one the client already asked is not judged again (re-scoring the same applicants is
genuine traffic, and tells the client nothing new).

Example:
    >>> from finmlsec.defences.ratelimit import Limit
    >>> from finmlsec.store.gateway import GatewayDB
    >>> store = SqlCounterStore(GatewayDB("sqlite://"))
    >>> [store.consume("k", [Limit("lifetime", None, 3)], 2, 0.0).allowed for _ in range(2)]
    [True, False]
    >>> store.set_flag("flag:k", "block"); store.get_flag("flag:k")
    'block'
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import threading
import time
import zlib
from typing import Any

import numpy as np
from sqlalchemy import (
    Column,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    delete,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from finmlsec.defences.extraction_detection import PradaDetector, PradaState, PradaVerdict
from finmlsec.defences.ratelimit import BudgetDecision, Limit
from finmlsec.errors import ConfigError, StoreError
from finmlsec.store.gateway import GatewayDB

_ALLOWED = BudgetDecision(True)


def _tables(meta: MetaData, p: str) -> tuple[Table, Table, Table]:
    counters = Table(f"{p}gw_counters", meta,
                     Column("key", String(300), primary_key=True),
                     Column("idx", Integer, nullable=False),
                     Column("used", Integer, nullable=False))
    flags = Table(f"{p}gw_flags", meta,
                  Column("key", String(300), primary_key=True),
                  Column("value", String(40), nullable=False),
                  Column("until", Float, nullable=True))
    prada = Table(f"{p}gw_prada_log", meta,
                  Column("id", Integer, primary_key=True, autoincrement=True),
                  Column("client", String(300), nullable=False, index=True),
                  Column("data", LargeBinary, nullable=True),  # None: a reset marker
                  sqlite_autoincrement=True)  # ids never reused: replicas read "after id N"
    return counters, flags, prada


class _Sql:
    """The durable-state tables on their own connection pool (SQLite: ``synchronous=NORMAL``,
    which survives a killed process; only an operating-system crash may lose the latest)."""

    def __init__(self, db: GatewayDB) -> None:
        self.engine = db.engine if not db.is_sqlite or db.url in ("sqlite://", "sqlite:///:memory:") \
            else GatewayDB._engine(db.url, False)
        self.is_sqlite = db.is_sqlite
        self.meta = MetaData()
        # the tables are created by the store's migrations (revision 0004), run when ``db``
        # was opened
        self.counters, self.flags, self.prada = _tables(self.meta, db.prefix)

    def run(self, fn: Any) -> Any:
        try:
            with self.engine.begin() as conn:
                return fn(conn)
        except SQLAlchemyError as exc:
            raise StoreError(f"the limits store is unavailable ({type(exc).__name__}); limits "
                             "cannot be checked, so the request is refused") from None


class SqlCounterStore:
    """:class:`~finmlsec.defences.ratelimit.CounterStore` in the gateway database: fixed windows,
    each check-and-charge one transaction (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: rows locked)."""

    def __init__(self, db: GatewayDB) -> None:
        self.sql = _Sql(db)
        self._lock = threading.Lock()

    def consume(self, key: str, limits: list[Limit], cost: int, now: float) -> BudgetDecision:
        t = self.sql.counters
        slots = []
        for lim in limits:
            idx = 0 if lim.seconds is None else math.floor(now / lim.seconds)
            left = None if lim.seconds is None else (idx + 1) * lim.seconds - now
            slots.append((f"{key}:{lim.name}", idx, left))

        def charge(conn: Any) -> BudgetDecision:
            q = select(t.c.key, t.c.idx, t.c.used).where(t.c.key.in_([s[0] for s in slots]))
            if not self.sql.is_sqlite:
                q = q.with_for_update()
            held = {r.key: (r.idx, r.used) for r in conn.execute(q)}
            for lim, (k, idx, left) in zip(limits, slots, strict=True):
                h = held.get(k)
                used = h[1] if h is not None and h[0] == idx else 0
                if used + cost > lim.limit:
                    return BudgetDecision(False, lim.name, lim.limit, left)
            for k, idx, _ in slots:
                h = held.get(k)
                if h is None:
                    conn.execute(insert(t).values(key=k, idx=idx, used=cost))
                else:
                    used = h[1] + cost if h[0] == idx else cost
                    conn.execute(update(t).where(t.c.key == k).values(idx=idx, used=used))
            return _ALLOWED

        with self._lock:  # one writer per process; other processes wait on the database lock
            for attempt in range(5):
                try:
                    decision: BudgetDecision = self.sql.run(charge)
                    return decision
                except StoreError:
                    if attempt == 4:
                        raise
                    time.sleep(0.01 * (attempt + 1))  # a racing first insert of the same key
        raise AssertionError("unreachable")

    def set_flag(self, key: str, value: str, ttl: float | None = None) -> None:
        t = self.sql.flags
        until = None if ttl is None else time.time() + ttl

        def put(conn: Any) -> None:
            if conn.execute(update(t).where(t.c.key == key).values(value=value, until=until)
                            ).rowcount == 0:
                conn.execute(insert(t).values(key=key, value=value, until=until))

        try:
            self.sql.run(put)
        except StoreError:
            self.sql.run(put)  # lost a race to insert the same flag: now it updates

    def get_flag(self, key: str) -> str | None:
        t = self.sql.flags
        try:
            with self.sql.engine.connect() as conn:
                row = conn.execute(select(t.c.value, t.c.until).where(t.c.key == key)).first()
        except SQLAlchemyError as exc:
            raise StoreError(f"the limits store is unavailable ({type(exc).__name__})") from None
        if row is None or (row.until is not None and time.time() >= row.until):
            return None
        return str(row.value)

    def clear_flag(self, key: str) -> None:
        self.sql.run(lambda conn: conn.execute(delete(self.sql.flags)
                                               .where(self.sql.flags.c.key == key)))


class DurableCounterStore:
    """The gateway's counter store without Redis: windows of up to an hour (request rates) in
    this process's memory, day and lifetime budgets and flags in the database (kept across
    restarts). A flag read is cached for ``flag_cache`` seconds (a block set by another replica
    takes effect within that time). When a short window allows a request and a durable one then
    refuses it, the short window keeps the charge (the durable budgets are exact)."""

    def __init__(self, db: GatewayDB, *, flag_cache: float = 0.5) -> None:
        from finmlsec.defences.ratelimit import MemoryCounterStore

        self.fast = MemoryCounterStore()
        self.durable = SqlCounterStore(db)
        self.flag_cache = flag_cache
        self._flags: dict[str, tuple[float, str | None]] = {}

    def consume(self, key: str, limits: list[Limit], cost: int, now: float) -> BudgetDecision:
        fast = [lim for lim in limits if lim.seconds is not None and lim.seconds <= 3600]
        slow = [lim for lim in limits if lim.seconds is None or lim.seconds > 3600]
        if fast:
            d = self.fast.consume(key, fast, cost, now)
            if not d.allowed or not slow:
                return d
        return self.durable.consume(key, slow, cost, now)

    def set_flag(self, key: str, value: str, ttl: float | None = None) -> None:
        self.durable.set_flag(key, value, ttl)
        self._flags.pop(key, None)

    def get_flag(self, key: str) -> str | None:
        now = time.monotonic()
        hit = self._flags.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        v = self.durable.get_flag(key)
        if len(self._flags) > 100_000:
            self._flags.clear()
        self._flags[key] = (now + self.flag_cache, v)
        return v

    def clear_flag(self, key: str) -> None:
        self.durable.clear_flag(key)
        self._flags.pop(key, None)


def check_redis_persistence(url: str, *, allow_volatile: bool = True) -> str | None:
    """None when Redis keeps its data across its own restart (``appendonly yes``), else a warning
    saying what is lost; a Redis that keeps nothing is refused unless ``allow_volatile``."""
    import redis

    try:
        r = redis.Redis.from_url(url, socket_timeout=5.0)
        aof = r.config_get("appendonly").get("appendonly")
        save = r.config_get("save").get("save")
    except redis.RedisError as exc:  # unreachable now: requests get 503 until it answers
        return (f"cannot check the Redis server's persistence ({type(exc).__name__}); budgets "
                "and blocks are kept there: make sure it has 'appendonly yes'")
    if aof == "yes":
        return None
    if save:
        return (f"Redis persists by snapshots only (save {save}): budgets charged and blocks set "
                "since the last snapshot are lost if Redis restarts; set 'appendonly yes'")
    msg = ("Redis persists nothing (appendonly no, save \"\"): a Redis restart refills every "
           "budget and lifts every extraction block; set 'appendonly yes'")
    if not allow_volatile:
        raise ConfigError(msg)
    return msg


# -- PRADA state shared across replicas and restarts ------------------------------------------------
def _pack(E: np.ndarray, labels: np.ndarray, far: np.ndarray | None) -> bytes:
    n = len(E)
    f = np.zeros(n) if far is None else np.asarray(far, dtype=float)
    block = np.column_stack([np.asarray(labels, dtype=float), f, np.asarray(E, dtype=float)])
    return zlib.compress(np.asarray(block, dtype="<f8").tobytes(), 1) + n.to_bytes(4, "little")


def _unpack(data: bytes, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = int.from_bytes(data[-4:], "little")
    block = np.frombuffer(zlib.decompress(data[:-4]), dtype="<f8").reshape(n, width + 2)
    return block[:, 2:], block[:, 0].astype(int), block[:, 1] > 0


def _first_seen(E: np.ndarray, distinct: set[bytes]) -> np.ndarray:
    """Positions of the rows of ``E`` not queried before (added to ``distinct``): asking again
    about a record tells the client nothing new, so a client re-scoring the same applicants is
    not judged on zero distances (PRADA would take them for probing)."""
    keep = []
    for i, row in enumerate(np.ascontiguousarray(E)):
        d = hashlib.blake2b(row.tobytes(), digest_size=12).digest()
        if d not in distinct:
            distinct.add(d)
            keep.append(i)
    return np.asarray(keep, dtype=int)


class PradaStates:
    """Every client's PRADA state, kept in a shared log (Redis stream when ``redis_url``, else
    the gateway database) and replayed into local states."""

    def __init__(self, detector: PradaDetector, width: int, *, db: GatewayDB | None = None,
                 redis_url: str | None = None, prefix: str = "finmlsec:",
                 keep: int = 4096) -> None:
        self.detector = detector
        self.width = width
        self.keep = keep
        # client -> (state, last log id, digests of the distinct queries seen)
        self._local: dict[str, tuple[PradaState, Any, set[bytes]]] = {}
        self._lock = threading.Lock()
        self._redis: Any = None
        self._sql: _Sql | None = None
        self._inserts = 0
        self._memory: dict[str, list[tuple[int, bytes | None]]] | None = None
        if redis_url:
            import redis

            self._redis = redis.Redis.from_url(redis_url, socket_timeout=5.0)
            self._errors: tuple[type[Exception], ...] = (redis.RedisError,)
            self.prefix = prefix + "prada:"
        elif db is not None:
            self._sql = _Sql(db)
        else:  # this process only, forgotten on restart
            self._memory = {}

    def observe(self, client: str, E: np.ndarray, labels: np.ndarray,
                far: np.ndarray | None) -> PradaVerdict:
        """Append this request's queries to the client's log, replay every entry not seen yet
        (other replicas' too, in log order), and judge."""
        data = _pack(E, labels, far)
        with self._lock:
            state, last, distinct = self._local.get(client) or (
                self.detector.new_state(), None, set())
            if self._redis is not None:
                entries = self._redis_append(client, data, last)
            elif self._sql is not None:
                entries = self._sql_append(client, data, last)
            else:
                entries = [(0, data)]
            was = state.flagged
            verdict = None
            for n, (eid, blob) in enumerate(entries):
                last = eid
                if blob is None:  # an operator lifted a block: start again
                    state, was, distinct = self.detector.new_state(), False, set()
                    continue
                if n == len(entries) - 1:
                    # this request's own entry is the last (appended and read atomically): only
                    # the replica whose request tips the verdict reports the flag
                    was = state.flagged
                Ei, li, fi = _unpack(blob, self.width)
                new = _first_seen(Ei, distinct)
                if len(new):
                    verdict = self.detector.observe(state, Ei[new], li[new], far=fi[new])
            self._local[client] = (state, last, distinct)
        if verdict is None:
            verdict = PradaVerdict(state.flagged, state.last_w, state.queries)
        return PradaVerdict(verdict.flagged, verdict.w, verdict.queries,
                            state.flagged and not was, verdict.far_rate, verdict.reason)

    def local(self) -> dict[str, PradaState]:
        """This replica's replayed state of every client it has seen."""
        with self._lock:
            return {c: st for c, (st, _, _) in self._local.items()}

    def reset(self, client: str) -> None:
        """Forget a client's queries (when an operator lifts its block), on every replica."""
        with self._lock:
            self._local.pop(client, None)
            if self._memory is not None:
                return
            if self._redis is not None:
                key = self.prefix + client
                self._call(lambda: self._redis.pipeline().delete(key).xadd(
                    key, {"d": b""}).execute())
            else:
                assert self._sql is not None
                t = self._sql.prada
                self._sql.run(lambda conn: (conn.execute(delete(t).where(t.c.client == client)),
                                            conn.execute(insert(t).values(client=client,
                                                                          data=None))))

    def _call(self, fn: Any) -> Any:
        try:
            return fn()
        except self._errors as exc:
            raise StoreError(f"the Redis store of the extraction detector is unavailable "
                             f"({type(exc).__name__})") from None

    def _redis_append(self, client: str, data: bytes, last: Any) -> list[tuple[Any, bytes | None]]:
        key = self.prefix + client

        def go() -> Any:
            pipe = self._redis.pipeline()
            pipe.xadd(key, {"d": data}, maxlen=self.keep, approximate=True)
            pipe.xrange(key, min="-" if last is None else f"({last.decode()}")
            return pipe.execute()

        _, entries = self._call(go)
        return [(eid, (f[b"d"] or None)) for eid, f in entries]

    def _sql_append(self, client: str, data: bytes, last: Any) -> list[tuple[Any, bytes | None]]:
        assert self._sql is not None
        t = self._sql.prada
        sql = self._sql

        def go(conn: Any) -> list[tuple[Any, bytes | None]]:
            if not sql.is_sqlite:  # one writer per client at a time: ids commit in order
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:c))"), {"c": client})
            conn.execute(insert(t).values(client=client, data=data))
            q = select(t.c.id, t.c.data).where(t.c.client == client)
            if last is not None:
                q = q.where(t.c.id > last)
            return [(r.id, r.data) for r in conn.execute(q.order_by(t.c.id))]

        entries: list[tuple[Any, bytes | None]] = sql.run(go)
        self._inserts += 1
        if self._inserts % 256 == 0:  # keep the latest ``keep`` entries of this client
            def prune(conn: Any) -> None:
                ids = select(t.c.id).where(t.c.client == client).order_by(
                    t.c.id.desc()).offset(self.keep).limit(1).scalar_subquery()
                conn.execute(delete(t).where(t.c.client == client, t.c.id <= ids))

            with contextlib.suppress(StoreError, IntegrityError):
                sql.run(prune)  # housekeeping: a failed one is caught up by the next
        return entries


def open_counter_store(db: GatewayDB, redis_url: str | None, prefix: str) -> tuple[Any, str | None]:
    """The counter store of a gateway (Redis when given, else its database) and a warning about
    its persistence, if any."""
    if redis_url:
        from finmlsec.defences.ratelimit import RedisCounterStore

        return (RedisCounterStore(redis_url, prefix=prefix),
                check_redis_persistence(redis_url, allow_volatile=True))
    return DurableCounterStore(db), None
