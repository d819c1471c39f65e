"""Limits that survive a restart: lifetime budgets, extraction blocks and PRADA's state, in the
gateway database (SQLite, PostgreSQL) or Redis; real servers killed with SIGTERM and SIGKILL and
restarted, and two replicas judging one client together."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from finmlsec.defences.extraction_detection import PradaDetector
from finmlsec.defences.ratelimit import QueryBudget, RedisCounterStore
from finmlsec.errors import ConfigError
from finmlsec.gateway.demo import DemoModel, credit_scoring_model
from finmlsec.gateway.durable import PradaStates, SqlCounterStore, check_redis_persistence
from finmlsec.store.gateway import GatewayDB
from test_gateway_extraction import tramer_queries
from test_gateway_limits import check_windows
from test_gateway_server import Server

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
POLICY = ("budget:\n  lifetime: 400\nextraction:\n  enabled: true\n  min_queries: 40\n"
          "  check_every: 5\n")


@pytest.fixture(scope="module")
def model() -> DemoModel:
    return credit_scoring_model(seed=0)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GatewayDB]:
    if request.param == "sqlite":
        d = GatewayDB(f"sqlite:///{tmp_path / 'gw.db'}")
        yield d
    else:
        d = GatewayDB(PG_URL, table_prefix=f"t{uuid.uuid4().hex[:10]}_")
        yield d
        d.drop_all()
    d.dispose()


def test_sql_store_windows_flags_and_no_overdraw(db: GatewayDB) -> None:
    check_windows(SqlCounterStore(db))
    stores = [SqlCounterStore(GatewayDB(db.url, table_prefix=db.prefix)) for _ in range(2)]
    b = QueryBudget(per_minute=None, per_day=100)
    granted: list[int] = []

    def work(store: SqlCounterStore) -> None:
        for _ in range(25):
            if b.consume(store, "c", cost=3, now=1000.0).allowed:
                granted.append(3)

    threads = [threading.Thread(target=work, args=(stores[i % 2],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == 99  # two "processes" on one database never overdraw
    s = stores[0]
    assert s.get_flag("flag:k") is None
    s.set_flag("flag:k", "block")
    s.set_flag("flag:k", "throttle")
    assert stores[1].get_flag("flag:k") == "throttle"
    s.clear_flag("flag:k")
    assert stores[1].get_flag("flag:k") is None


@pytest.mark.redis
def test_a_redis_that_keeps_nothing_is_named() -> None:
    import redis

    r = redis.Redis.from_url(REDIS_URL)
    if r.config_get("appendonly")["appendonly"] == "yes":
        pytest.skip("this Redis appends to a file; the warning path needs one that does not")
    msg = check_redis_persistence(REDIS_URL)
    assert msg is not None and "appendonly yes" in msg
    if not r.config_get("save")["save"]:
        with pytest.raises(ConfigError, match="persists nothing"):
            check_redis_persistence(REDIS_URL, allow_volatile=False)


def _probe(model: DemoModel, det: PradaDetector) -> list[tuple[np.ndarray, np.ndarray]]:
    import pandas as pd

    from finmlsec.defences.extraction_detection import SchemaEncoder

    q = pd.DataFrame(tramer_queries(model, 3))
    E = SchemaEncoder(model.schema).encode_frame(q)
    labels = np.argmax(model.target.predict_proba(q), axis=1)
    return [(E[i:i + 10], labels[i:i + 10]) for i in range(0, len(q), 10)]


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def test_replicas_and_a_restart_judge_one_sequence(model: DemoModel, kind: str,
                                                   tmp_path: Path) -> None:
    det = PradaDetector(min_queries=40, check_every=5, max_far_rate=None).validate()
    batches = _probe(model, det)
    width = batches[0][0].shape[1]
    alone = PradaStates(det, width)
    expected = [alone.observe("c", E, y, None) for E, y in batches]
    assert any(v.flagged for v in expected)  # the probing is caught within 300 queries
    prefix = f"finmlsec-test-{uuid.uuid4().hex[:10]}:"

    def replica() -> PradaStates:
        if kind == "redis":
            return PradaStates(det, width, redis_url=REDIS_URL, prefix=prefix)
        return PradaStates(det, width, db=GatewayDB(f"sqlite:///{tmp_path / 'gw.db'}"))

    try:
        a, b = replica(), replica()
        got = [(a if i % 2 else b).observe("c", E, y, None) for i, (E, y) in
               enumerate(batches[:12])]
        restarted = replica()  # a third process starting now rebuilds the state from the log
        got += [(restarted if i % 2 else a).observe("c", E, y, None) for i, (E, y) in
                enumerate(batches[12:])]
        assert [(v.flagged, v.queries, v.w) for v in got] == [
            (v.flagged, v.queries, v.w) for v in expected]
        assert sum(v.newly_flagged for v in got) == 1
        restarted.reset("c")  # an operator lifts the block: every replica starts again
        assert a.observe("c", *batches[0], None).queries == expected[0].queries
    finally:
        if kind == "redis":
            RedisCounterStore(REDIS_URL, prefix=prefix).clear_prefix()


def _send(url: str, token: str, records: list[dict[str, Any]]) -> int:
    r = httpx.post(f"{url}/v1/predict", json={"records": records}, timeout=30,
                   headers={"Authorization": f"Bearer {token}"})
    return r.status_code


def _keys(db: GatewayDB) -> tuple[str, str]:
    return (db.create_key(org="bank", role="system_user").token,
            db.create_key(org="bank", role="system_user").token)


def _flag_point(servers: list[Server], token: str, queries: list[dict[str, Any]],
                restart_after: int | None = None, restart: Any = None) -> int | None:
    for n, i in enumerate(range(0, len(queries), 10)):
        if restart_after is not None and n == restart_after:
            restart()
        code = _send(servers[n % len(servers)].url, token, queries[i:i + 10])
        if code == 403:
            return i
        assert code == 200
    return None


@pytest.mark.slow
def test_budget_block_and_detector_survive_sigkill_and_sigterm(model: DemoModel,
                                                               tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gw.db'}"
    db = GatewayDB(url)
    spender, attacker = _keys(db)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    args = ["--db", url, "--policy", str(policy)]
    queries = tramer_queries(model, 3)
    records = json.loads(model.heldout.iloc[:100].to_json(orient="records"))
    servers = [Server(args, tmp_path / "s0.log")]

    def kill_and_restart() -> None:
        servers[0].kill()
        servers[0] = Server(args, tmp_path / "s1.log")

    try:
        assert [_send(servers[0].url, spender, records) for _ in range(5)] == [200] * 4 + [429]
        # the attacker: half its probing before a SIGKILL, the rest after
        flagged = _flag_point(servers, attacker, queries, restart_after=3,
                              restart=kill_and_restart)
        servers[0].stop()  # SIGTERM
        servers[0] = Server(args, tmp_path / "s2.log")
        assert _send(servers[0].url, spender, records[:1]) == 429  # lifetime budget still spent
        assert _send(servers[0].url, attacker, records[:1]) == 403  # block still on
    finally:
        servers[0].stop()
    # the same probing against one server that never restarted is caught at the same query
    fresh = GatewayDB(f"sqlite:///{tmp_path / 'fresh.db'}")
    token = fresh.create_key(org="bank", role="system_user").token
    ref = Server(["--db", fresh.url, "--policy", str(policy)], tmp_path / "ref.log")
    try:
        assert flagged is not None and flagged == _flag_point([ref], token, queries)
    finally:
        ref.stop()


@pytest.fixture
def shared() -> Iterator[tuple[str, str]]:
    run = uuid.uuid4().hex[:10]
    prefix, rprefix = f"t{run}_", f"finmlsec-test-{run}:"
    yield prefix, rprefix
    db = GatewayDB(PG_URL, table_prefix=prefix)
    db.drop_all()
    db.dispose()
    RedisCounterStore(REDIS_URL, prefix=rprefix).clear_prefix()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_two_replicas_catch_a_client_that_alternates_between_them(
        model: DemoModel, tmp_path: Path, shared: tuple[str, str]) -> None:
    prefix, rprefix = shared
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    db = GatewayDB(PG_URL, table_prefix=prefix)
    spender, attacker = _keys(db)
    queries = tramer_queries(model, 3)
    records = json.loads(model.heldout.iloc[:100].to_json(orient="records"))
    args = ["--db", PG_URL, "--table-prefix", prefix, "--redis", REDIS_URL, "--redis-prefix",
            rprefix, "--policy", str(policy), "--audit-key-file", str(tmp_path / "k")]
    (tmp_path / "k").write_text("ab" * 32)
    a = Server(args, tmp_path / "a.log")
    b = Server(args, tmp_path / "b.log")
    try:
        both = [a, b]
        flagged = _flag_point(both, attacker, queries)
        assert _send(a.url, attacker, records[:1]) == 403 and _send(b.url, attacker,
                                                                    records[:1]) == 403
        codes = [_send(both[i % 2].url, spender, records) for i in range(5)]
        assert codes == [200] * 4 + [429]
        b.kill()
        b = Server(args, tmp_path / "b2.log")
        assert _send(b.url, attacker, records[:1]) == 403
        assert _send(b.url, spender, records[:1]) == 429
    finally:
        a.stop()
        b.stop()
    # one process alone catches the same probing at the same query (the policy's detector:
    # the default far-query rate too); the request that tips the verdict is refused
    det = PradaDetector(min_queries=40, check_every=5, max_far_rate=0.1).validate()
    from finmlsec.defences.extraction_detection import SchemaEncoder

    det.fit_reference(SchemaEncoder(model.schema).encode_frame(model.train))
    alone = PradaStates(det, SchemaEncoder(model.schema).width)
    import pandas as pd

    ref = None
    for i in range(0, len(queries), 10):
        q = pd.DataFrame(queries[i:i + 10])
        E = SchemaEncoder(model.schema).encode_frame(q)
        v = alone.observe("c", E, np.argmax(model.target.predict_proba(q), axis=1),
                          det.far_mask(E))
        if v.flagged:
            ref = i
            break
    assert flagged is not None and ref is not None and flagged == ref
