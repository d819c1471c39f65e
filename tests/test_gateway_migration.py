"""The gateway's durable tables (budget counters, flags, the extraction detector's log) in the
store's migration history: upgrade from revision 0003 on SQLite and PostgreSQL, adopting tables
the gateway created itself before they were migrated."""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import MetaData, create_engine, insert, inspect, select, text

from finmlsec.defences.extraction_detection import PradaDetector
from finmlsec.defences.ratelimit import Limit
from finmlsec.gateway.durable import PradaStates, SqlCounterStore, _tables
from finmlsec.store.db import migrate
from finmlsec.store.gateway import GatewayDB

DURABLE = {"gw_counters", "gw_flags", "gw_prada_log"}
HEAD = "0008"


def _version(engine: object, prefix: str = "") -> str:
    with engine.connect() as c:  # type: ignore[attr-defined]
        return str(c.execute(text(f"select version_num from {prefix}alembic_version")).scalar())


def _at_0003(url: str, prefix: str = "") -> None:
    engine = create_engine(url)
    migrate(engine, prefix=prefix, revision="0003")
    engine.dispose()


def _check_upgraded(db: GatewayDB, prefix: str = "") -> None:
    names = set(inspect(db.engine).get_table_names())
    assert {prefix + n for n in DURABLE} <= names
    assert _version(db.engine, prefix) == HEAD
    idx = {i["name"] for i in inspect(db.engine).get_indexes(f"{prefix}gw_prada_log")}
    assert f"ix_{prefix}gw_prada_log_client" in idx
    store = SqlCounterStore(db)
    lim = [Limit("lifetime", None, 3)]
    assert [store.consume("k", lim, 2, 0.0).allowed for _ in range(2)] == [True, False]
    store.set_flag("flag:k", "block")
    assert SqlCounterStore(db).get_flag("flag:k") == "block"  # a second process sees it
    det = PradaDetector(min_queries=5, check_every=1).validate()
    states = PradaStates(det, 3, db=db)
    rng = np.random.default_rng(0)
    states.observe("c", rng.normal(size=(8, 3)), np.zeros(8, dtype=int), None)
    replay = PradaStates(det, 3, db=db)  # a restarted replica replays the log
    assert replay.observe("c", rng.normal(size=(1, 3)), np.zeros(1, dtype=int),
                          None).queries == 9


def test_upgrade_from_0003_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gw.db'}"
    _at_0003(url)
    engine = create_engine(url)
    assert _version(engine) == "0003" and not DURABLE & set(inspect(engine).get_table_names())
    engine.dispose()
    db = GatewayDB(url)
    _check_upgraded(db)
    db.dispose()


def test_durable_tables_made_before_0004_are_adopted_with_their_rows(tmp_path: Path) -> None:
    """A gateway of revision 0003 created these tables itself; the upgrade keeps their rows
    (a block stays on, a spent budget stays spent)."""
    url = f"sqlite:///{tmp_path / 'gw.db'}"
    _at_0003(url)
    engine = create_engine(url)
    meta = MetaData()
    counters, flags, _ = _tables(meta, "")
    meta.create_all(engine)
    with engine.begin() as c:
        c.execute(insert(flags).values(key="flag:old", value="block", until=None))
        c.execute(insert(counters).values(key="rows:old:lifetime", idx=0, used=3))
    engine.dispose()
    db = GatewayDB(url)
    assert _version(db.engine) == HEAD
    store = SqlCounterStore(db)
    assert store.get_flag("flag:old") == "block"
    assert not store.consume("rows:old", [Limit("lifetime", None, 3)], 1, 0.0).allowed
    with db.engine.connect() as c:
        assert c.execute(select(flags.c.key)).scalars().all() == ["flag:old"]
    db.dispose()


@pytest.mark.postgres
def test_upgrade_from_0003_on_postgresql(pg_url: str) -> None:
    prefix = f"m{uuid.uuid4().hex[:8]}_"
    _at_0003(pg_url, prefix)
    db = GatewayDB(pg_url, table_prefix=prefix)
    try:
        _check_upgraded(db, prefix)
    finally:
        db.drop_all()
        db.dispose()
