"""The result store: migrations, runs and units, on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from finmlsec.errors import StoreError
from finmlsec.store import Store, normalize_url


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
        assert c.execute(text("select version_num from alembic_version")).scalar() == "0001"
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


def _pg_url() -> str:
    import psycopg

    for user in ("postgres", "root"):
        try:
            psycopg.connect(f"host=127.0.0.1 port=5432 dbname=test user={user}",
                            connect_timeout=3).close()
            return f"postgresql://{user}@127.0.0.1:5432/test"
        except psycopg.OperationalError:
            continue
    pytest.fail("PostgreSQL on 127.0.0.1:5432 (db test) is not reachable as postgres or root")


@pytest.fixture()
def pg_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a schema unique to this test run, dropped after."""
    import psycopg

    url = _pg_url()
    schema = f"finmlsec_test_{uuid.uuid4().hex[:12]}"
    dsn = url.replace("postgresql://", "postgresql://", 1)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{url}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.mark.postgres
def test_postgresql_store(pg_schema_url: str) -> None:
    store = Store.open(pg_schema_url)
    schema = pg_schema_url.rsplit("%3D", 1)[1]
    tables = set(inspect(store.engine).get_table_names(schema=schema))
    assert {"runs", "units", "alembic_version"} <= tables
    _roundtrip(store)
    Store.open(pg_schema_url)  # second open: already at head
    store.engine.dispose()
