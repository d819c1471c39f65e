"""The result store: migrations, runs and units, on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from finmlsec.errors import StoreError
from finmlsec.store import Store, normalize_url
from finmlsec.store.gateway import GatewayDB, gateway_tables

HEAD = "0008"
GW_TABLES = {"gw_api_keys", "gw_audit", "gw_audit_head", "gw_feedback", "gw_settings"}


def _roundtrip(store: Store) -> None:
    rid = store.create_run(
        spec_path="/x/spec.yaml", spec_name="credit", profile="quick", seed=7, system_type=3,
        options={"include_accepted": False}, analysis={"type": 3}, plan={"units": []},
        units=["a", "b", "c"], diagram_svg="<svg/>", version="0.1.0",
    )
    assert [u.status for u in store.units(rid)] == ["pending"] * 3
    store.mark_running(rid, "b", "w1")
    store.record_outcome(rid, "b", status="done", outcome={"success": 0.75}, seconds=1.5)
    store.mark_running(rid, "a")
    store.record_outcome(rid, "a", status="failed", outcome={"error": "boom"})
    units = {u.unit_id: u for u in store.units(rid)}
    assert units["b"].status == "done" and units["b"].outcome == {"success": 0.75}
    assert units["b"].attempts == 1 and units["b"].worker == "w1" and units["b"].seconds == 1.5
    assert units["a"].status == "failed" and units["c"].outcome is None
    assert [u.unit_id for u in store.units(rid)] == ["a", "b", "c"]  # plan order kept
    run = store.run(rid[:10])  # prefix
    assert run.id == rid and run.system_type == 3 and run.analysis == {"type": 3}
    assert run.summary is None and run.status == "running"
    store.finish_run(rid, status="done", summary={"max_risk": "high"})
    assert store.run("last").summary == {"max_risk": "high"}
    assert store.run(rid).finished_at is not None
    with pytest.raises(StoreError, match="no run 'nope'"):
        store.run("nope")
    store.delete_run(rid)
    assert store.runs() == []


def test_sqlite_file_is_created_migrated_and_reopened(tmp_path: Path) -> None:
    db = tmp_path / "finmlsec.db"
    store = Store.open(str(db))
    assert db.exists()
    tables = set(inspect(store.engine).get_table_names())
    assert {"runs", "units", "alembic_version"} <= tables
    with store.engine.connect() as c:
        assert c.execute(text("select version_num from alembic_version")).scalar() == HEAD
    _roundtrip(store)
    rid = store.create_run(spec_path="s", spec_name="n", profile="quick", seed=0,
                           system_type=None, options={}, analysis={}, plan={}, units=["u"])
    again = Store.open(f"sqlite:///{db}")  # migrating an up-to-date store is a no-op
    assert again.run(rid).spec_name == "n"


def test_url_normalisation_and_bad_urls() -> None:
    assert normalize_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalize_url("results.db") == "sqlite:///results.db"
    with pytest.raises(StoreError, match="cannot open the result store"):
        Store.open("nosuchdialect://x")


def test_ambiguous_prefix_is_refused(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "a.db"))
    for rid in ("20260101-aaa", "20260101-bbb"):
        store.create_run(spec_path="s", spec_name="n", profile="quick", seed=0, system_type=None,
                         options={}, analysis={}, plan={}, units=[], run_id=rid)
    with pytest.raises(StoreError, match="ambiguous"):
        store.run("20260101")
    assert store.run("20260101-b").id == "20260101-bbb"


@pytest.fixture()
def pg_schema_url(pg_url: str) -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a schema unique to this test run, dropped after."""
    import psycopg

    url = pg_url.replace("postgresql+psycopg://", "postgresql://", 1)
    schema = f"finmlsec_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{url}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.mark.postgres
def test_postgresql_store(pg_schema_url: str) -> None:
    store = Store.open(pg_schema_url)
    schema = pg_schema_url.rsplit("%3D", 1)[1]
    tables = set(inspect(store.engine).get_table_names(schema=schema))
    assert {"runs", "units", "alembic_version", "portfolios", "portfolio_systems"} <= tables
    _roundtrip(store)
    _portfolio_roundtrip(store)
    Store.open(pg_schema_url)  # second open: already at head
    store.engine.dispose()


def _portfolio_roundtrip(store: Store) -> None:
    pid = store.create_portfolio(
        inventory_path="/bank/inventory.yaml", name="bank", digest="d1", options={},
        systems=[{"name": "credit", "spec_path": "/bank/credit/spec.yaml", "entry": {"seed": 0}},
                 {"name": "fraud", "spec_path": "/bank/fraud/spec.yaml", "entry": {"seed": 1}}])
    store.set_portfolio_system(pid, "credit", status="done", run_id="r-credit")
    store.set_portfolio_system(pid, "fraud", status="error", error="model file missing")
    pf = store.portfolio(pid)
    assert [(s.name, s.status, s.run_id, s.error) for s in pf.systems] == [
        ("credit", "done", "r-credit", None), ("fraud", "error", None, "model file missing")]
    assert pf.systems[1].entry == {"seed": 1}
    # an unfinished portfolio of the same inventory and digest is found to resume; not another
    assert store.open_portfolio("/bank/inventory.yaml", "d1").id == pid  # type: ignore[union-attr]
    assert store.open_portfolio("/bank/inventory.yaml", "d2") is None
    store.set_portfolio_status(pid, "done")
    assert store.open_portfolio("/bank/inventory.yaml", "d1") is None
    assert store.portfolio(pid).finished_at is not None


def test_portfolios_are_stored(tmp_path: Path) -> None:
    _portfolio_roundtrip(Store.open(str(tmp_path / "p.db")))


def _version(engine: object, prefix: str = "") -> str:
    with engine.connect() as c:  # type: ignore[attr-defined]
        return str(c.execute(text(f"select version_num from {prefix}alembic_version")).scalar())


def test_gateway_and_scan_tables_share_one_migration_history(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'one.db'}"
    gw = GatewayDB(url)
    key = gw.create_key(org="bank", role="system_user")
    store = Store.open(url)  # the scan's store on the same database: already at head
    assert GW_TABLES | {"runs", "units", "alembic_version"} <= set(
        inspect(store.engine).get_table_names())
    assert _version(store.engine) == HEAD
    _roundtrip(store)
    assert GatewayDB(url).verify_token(key.token) is not None  # reopening migrates nothing


def test_gateway_tables_created_before_migrations_are_adopted(tmp_path: Path) -> None:
    """A gateway database from before its tables joined the migration history (created on
    first use, no version table) keeps its keys and audit chain and is brought to head."""
    from sqlalchemy import Column, MetaData, String, Table, create_engine, insert

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    meta = MetaData()
    t = gateway_tables(meta)
    old = MetaData()  # the tables as the gateway created them then (keys without expiry)
    for name, table in t.items():
        if name != "keys":
            table.to_metadata(old)
    t["keys"] = Table("gw_api_keys", old, *(Column(c, String(200), nullable=c == "revoked",
                                                   primary_key=c == "key_id")
                                            for c in ("key_id", "token_hash", "org", "role",
                                                      "name", "created", "revoked")))
    old.create_all(engine)
    with engine.begin() as c:
        c.execute(insert(t["keys"]).values(key_id="a" * 12, token_hash="0" * 64, org="bank",
                                            role="admin", name="", created="2026", revoked=None))
        c.execute(insert(t["head"]).values(id=1, seq=0, hash="0" * 64))
        c.execute(insert(t["settings"]).values(name="digest_salt", value="ab" * 32))
    engine.dispose()
    db = GatewayDB(url)
    assert [k.key_id for k in db.list_keys()] == ["a" * 12]
    assert db.digest_salt() == bytes.fromhex("ab" * 32)  # the old salt kept, not replaced
    assert _version(db.engine) == HEAD and "runs" in inspect(db.engine).get_table_names()


@pytest.mark.postgres
def test_gateway_tables_on_postgresql_with_a_prefix_racing(pg_schema_url: str) -> None:
    """Two processes opening the same fresh database at once both end at head, once."""
    from concurrent.futures import ThreadPoolExecutor

    url = normalize_url(pg_schema_url)
    with ThreadPoolExecutor(2) as pool:
        dbs = list(pool.map(lambda _: GatewayDB(url, table_prefix="t1_"), range(2)))
    schema = pg_schema_url.rsplit("%3D", 1)[1]
    tables = set(inspect(dbs[0].engine).get_table_names(schema=schema))
    assert {f"t1_{n}" for n in GW_TABLES | {"runs", "units", "alembic_version"}} <= tables
    assert _version(dbs[0].engine, "t1_") == HEAD
    k = dbs[0].create_key(org="bank", role="admin")
    assert dbs[1].find_key(k.key_id) is not None
    dbs[0].drop_all()
    assert not {t for t in inspect(dbs[0].engine).get_table_names(schema=schema)
                if t.startswith("t1_")}
    for d in dbs:
        d.dispose()


def _claim_race(url: str) -> None:
    """Six stores (an engine each, as six processes have) claim one portfolio at once: exactly
    one wins, and holds it."""
    import threading

    first = Store.open(url)
    pid = first.create_portfolio(inventory_path="/bank/inventory.yaml", name="bank", digest="d",
                                 options={}, systems=[])
    stores = [Store.open(url, migrate=False) for _ in range(6)]
    go = threading.Barrier(len(stores), timeout=30)
    won: list[str] = []

    def contend(i: int) -> None:
        go.wait()
        if stores[i].claim_portfolio(pid, f"owner{i}", 30):
            won.append(f"owner{i}")

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1, won
    assert first.portfolio(pid).owner == won[0]
    assert not first.claim_portfolio(pid, "late", 30)  # held: the lease has not run out
    first.release_portfolio(pid, won[0])
    assert first.claim_portfolio(pid, "late", 30)
    for store in [first, *stores]:
        store.engine.dispose()


def test_one_of_concurrent_portfolio_claims_wins_on_sqlite(tmp_path: Path) -> None:
    _claim_race(f"sqlite:///{tmp_path / 'claims.db'}")


@pytest.mark.postgres
def test_one_of_concurrent_portfolio_claims_wins_on_postgresql(pg_schema_url: str) -> None:
    _claim_race(pg_schema_url)


def test_threads_of_one_process_open_a_new_store_at_once(tmp_path: Path) -> None:
    """Each migrates it (Alembic's context is a global of the process): none sees another's."""
    import threading

    url = f"sqlite:///{tmp_path / 'new.db'}"
    go = threading.Barrier(4, timeout=30)
    errors: list[BaseException] = []

    def open_store() -> None:
        go.wait()
        try:
            Store.open(url).engine.dispose()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert {"runs", "portfolios"} <= set(inspect(Store.open(url).engine).get_table_names())
