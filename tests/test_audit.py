"""The hash-chained audit log: group commit, tamper detection, CLI, PostgreSQL."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, select, text, update
from typer.testing import CliRunner

from finmlsec.cli._errors import EXIT_TAMPERED
from finmlsec.cli.main import build_app
from finmlsec.errors import AuditError
from finmlsec.gateway.audit import AuditWriter, canonical, chain
from finmlsec.gateway.audit_verify import verify_chain
from finmlsec.store.gateway import GENESIS, GatewayDB


def filled(url: str, n: int = 30, prefix: str = "") -> GatewayDB:
    db = GatewayDB(url, table_prefix=prefix)
    w = AuditWriter(db, batch_max=7)
    futures = [w.submit({"action": "predict", "status": 200, "i": i}) for i in range(n)]
    assert sorted(f.result(timeout=30) for f in futures) == list(range(1, n + 1))
    w.close()
    return db


@pytest.fixture
def db(tmp_path: Path) -> GatewayDB:
    return filled(f"sqlite:///{tmp_path / 'a.db'}")


def test_chain_is_h_prev_concat_canonical_entry(db: GatewayDB) -> None:
    with db.engine.connect() as conn:
        rows = conn.execute(select(db.audit).order_by(db.audit.c.seq)).all()
    prev = GENESIS
    for r in rows:
        entry = json.loads(r.body)
        assert r.body == canonical(entry) and entry["seq"] == r.seq
        import hashlib

        assert r.hash == hashlib.sha256(bytes.fromhex(prev) + r.body.encode()).hexdigest()
        prev = r.hash
    res = verify_chain(db)
    assert res.ok and res.entries == 30 and res.head_hash == prev


def test_edit_is_detected(db: GatewayDB) -> None:
    with db.engine.begin() as conn:
        body = conn.execute(select(db.audit.c.body).where(db.audit.c.seq == 12)).scalar_one()
        conn.execute(update(db.audit).where(db.audit.c.seq == 12)
                     .values(body=body.replace('"status":200', '"status":403')))
    res = verify_chain(db)
    assert not res.ok and res.bad_seq == 12 and "edited" in (res.problem or "")
    with pytest.raises(AuditError, match="entry 12 was edited"):
        res.raise_for_problem()


def test_edit_with_recomputed_hash_is_detected_downstream(db: GatewayDB) -> None:
    with db.engine.begin() as conn:
        rows = {r.seq: r for r in conn.execute(select(db.audit)).all()}
        body = rows[5].body.replace('"i":4', '"i":99')
        conn.execute(update(db.audit).where(db.audit.c.seq == 5)
                     .values(body=body, hash=chain(rows[4].hash, body)))
    res = verify_chain(db)
    assert not res.ok and res.bad_seq == 6


def test_deleted_entry_is_detected(db: GatewayDB) -> None:
    with db.engine.begin() as conn:
        conn.execute(delete(db.audit).where(db.audit.c.seq == 7))
    res = verify_chain(db)
    assert not res.ok and res.bad_seq == 7 and "missing" in (res.problem or "")


def test_truncation_at_the_end_is_detected(db: GatewayDB) -> None:
    with db.engine.begin() as conn:
        conn.execute(delete(db.audit).where(db.audit.c.seq >= 29))
    res = verify_chain(db)
    assert not res.ok and "deleted from the end" in (res.problem or "")


def test_reordering_is_detected(db: GatewayDB) -> None:
    with db.engine.begin() as conn:
        rows = {r.seq: r for r in conn.execute(select(db.audit)).all()}
        # swap the contents of entries 10 and 11, keeping their positions
        for a, b in ((10, 11), (11, 10)):
            conn.execute(update(db.audit).where(db.audit.c.seq == a)
                         .values(body=rows[b].body, hash=rows[b].hash))
    res = verify_chain(db)
    assert not res.ok and res.bad_seq == 10


def test_group_commit_under_concurrency_keeps_one_contiguous_chain(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    dbs = [GatewayDB(url), GatewayDB(url)]  # two writers on one file, like two processes
    writers = [AuditWriter(d, batch_max=16) for d in dbs]
    seqs: list[int] = []
    lock = threading.Lock()

    def work(w: AuditWriter, t: int) -> None:
        fs = [w.submit({"action": "predict", "t": t, "i": i}) for i in range(100)]
        got = [f.result(timeout=60) for f in fs]
        with lock:
            seqs.extend(got)

    threads = [threading.Thread(target=work, args=(writers[t % 2], t)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seqs) == list(range(1, 401))
    assert sum(w.commits for w in writers) < 400  # entries were grouped into fewer commits
    assert verify_chain(dbs[0]).ok


def test_cli_verify_reports_tampering_with_its_own_exit_code(
    db: GatewayDB, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    runner = CliRunner()
    app = build_app()
    ok = runner.invoke(app, ["audit", "verify", "--db", db.url])
    assert ok.exit_code == 0 and "audit chain ok: 30 entries" in ok.output
    shown = runner.invoke(app, ["audit", "show", "--db", db.url, "--limit", "2"])
    assert [json.loads(line)["seq"] for line in shown.output.splitlines()] == [1, 2]
    with db.engine.begin() as conn:
        conn.execute(delete(db.audit).where(db.audit.c.seq == 3))
    from finmlsec.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["audit", "verify", "--db", db.url])
    # tampering is not a user error (2): it has its own code, and one line saying so
    assert exc.value.code == EXIT_TAMPERED == 5
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("verification failed: audit log: entry")
    bad = runner.invoke(app, ["audit", "verify", "--db", db.url, "--json"])
    assert bad.exit_code == EXIT_TAMPERED and json.loads(bad.output)["bad_seq"] == 3
    # a user error stays 2
    with pytest.raises(SystemExit) as exc:
        main(["audit", "verify", "--db", db.url, "--anchor"])
    assert exc.value.code == 2


@pytest.fixture
def pg_prefix(pg_url: str) -> Iterator[str]:
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    yield prefix
    db = GatewayDB(pg_url, table_prefix=prefix)
    db.drop_all()
    db.dispose()


@pytest.mark.postgres
def test_postgres_chain_with_two_writers(pg_url: str, pg_prefix: str) -> None:
    dbs = [GatewayDB(pg_url, table_prefix=pg_prefix) for _ in range(2)]
    writers = [AuditWriter(d, batch_max=8) for d in dbs]
    fs = [writers[i % 2].submit({"action": "predict", "i": i}) for i in range(200)]
    assert sorted(f.result(timeout=60) for f in fs) == list(range(1, 201))
    assert verify_chain(dbs[1]).ok
    with dbs[0].engine.begin() as conn:
        body = conn.execute(select(dbs[0].audit.c.body).where(dbs[0].audit.c.seq == 50)).scalar_one()
        conn.execute(text(f"UPDATE {pg_prefix}gw_audit SET body = :b WHERE seq = 50"),
                     {"b": body.replace('"action":"predict"', '"action":"predicT"')})
    assert not verify_chain(dbs[0]).ok
    for d in dbs:
        d.dispose()


def test_async_submissions_are_settled_after_commit_in_order(tmp_path: Path) -> None:
    import asyncio

    db = GatewayDB(f"sqlite:///{tmp_path / 'a.db'}")
    w = AuditWriter(db, linger=0.002)

    async def run() -> list[int]:
        futs = [w.submit_async({"action": "predict", "i": i}) for i in range(200)]
        return list(await asyncio.gather(*futs))

    try:
        seqs = asyncio.run(run())
        assert seqs == list(range(1, 201))  # one chain, in submission order
        assert w.commits < 200  # grouped commits
        r = verify_chain(db)
        assert r.ok and r.entries == 200
        with db.engine.connect() as conn:
            bodies = [json.loads(b) for (b,) in conn.execute(
                select(db.audit.c.body).order_by(db.audit.c.seq))]
        assert [b["i"] for b in bodies] == list(range(200))
    finally:
        w.close()
        db.dispose()


def test_async_submission_fails_with_a_store_error_when_the_log_cannot_be_written(
        tmp_path: Path) -> None:
    import asyncio

    from finmlsec.errors import StoreError

    db = GatewayDB(f"sqlite:///{tmp_path / 'a.db'}")
    w = AuditWriter(db)

    async def run() -> None:
        await w.submit_async({"action": "predict", "bad": float("nan")})  # not valid JSON

    try:
        with pytest.raises(StoreError, match="audit log could not be written"):
            asyncio.run(run())
    finally:
        w.close()
        db.dispose()


def test_an_anchor_closed_twice_or_used_after_close_never_touches_another_file(tmp_path) -> None:
    import os

    from finmlsec.gateway.auditkey import Anchor, read_anchors

    anchor = Anchor(tmp_path / "anchor", bytes(32))
    anchor.append(1, "a" * 64)
    anchor.close()
    other = os.open(tmp_path / "other", os.O_RDWR | os.O_CREAT, 0o600)  # may reuse the number
    try:
        anchor.close()  # a second close must not close `other`
        anchor.append(2, "b" * 64)  # nor may a late append write into it
        os.write(other, b"x")
        assert (tmp_path / "other").read_bytes() == b"x"
    finally:
        os.close(other)
    anchor.close()
    assert [a.seq for a in read_anchors(tmp_path / "anchor", bytes(32))] == [1, 2]
