"""The audit log against whoever administers its database: a real server on loopback (SQLite and
PostgreSQL), then the database edited behind its back. Truncating the newest entries and setting
the head back, turning a 403 into a 200 and recomputing every later hash, and approving a
quarantined feedback report in the table must each fail ``finmlsec audit verify``, and the forged
approval must not be exported."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, insert, select, update

from finmlsec.gateway.audit import chain, open_writer
from finmlsec.gateway.audit_verify import verify_log
from finmlsec.gateway.auditkey import read_anchors
from finmlsec.gateway.feedback import feedback_row, submission_entry
from finmlsec.store.gateway import GatewayDB
from test_gateway_server import ROOT, Server

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "finmlsec.cli.main", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=120)


class Deployment:
    """Where one gateway keeps its log: database URL, prefix, key file and anchor file."""

    def __init__(self, tmp: Path, backend: str) -> None:
        self.prefix = f"t{uuid.uuid4().hex[:10]}_" if backend == "postgres" else ""
        self.url = PG_URL if backend == "postgres" else f"sqlite:///{tmp / 'gw.db'}"
        self.key_file = tmp / "audit.key"
        self.key_file.write_text(secrets.token_hex(32) + "\n")
        self.anchor = tmp / "audit.anchor"
        self.db = GatewayDB(self.url, table_prefix=self.prefix)

    def args(self) -> list[str]:
        return ["--db", self.url, "--table-prefix", self.prefix,
                "--audit-key-file", str(self.key_file)]

    def verify(self) -> subprocess.CompletedProcess[str]:
        return cli("audit", "verify", *self.args(), "--anchor", str(self.anchor))

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        with self.db.engine.connect() as conn:
            return {t.name: [dict(r._mapping) for r in conn.execute(select(t))]
                    for t in (self.db.audit, self.db.head, self.db.feedback, self.db.keys)}

    def restore(self, snap: dict[str, list[dict[str, Any]]]) -> None:
        with self.db.engine.begin() as conn:
            for t in (self.db.audit, self.db.head, self.db.feedback, self.db.keys):
                conn.execute(delete(t))
                if snap[t.name]:
                    conn.execute(insert(t), snap[t.name])


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    d = Deployment(tmp_path, request.param)
    yield d
    if d.prefix:
        d.db.drop_all()
    d.db.dispose()


def bodies_of(db: GatewayDB) -> list[Any]:
    with db.engine.connect() as conn:
        return list(conn.execute(select(db.audit).order_by(db.audit.c.seq)))


def bodies(d: Deployment) -> list[Any]:
    return bodies_of(d.db)


def rechain_from(d: Deployment, first: int, new_body: dict[int, str]) -> None:
    """What an administrator without the key can do: recompute every hash from ``first`` on with
    plain SHA-256 (the only chain they can compute) and set the head to match."""
    rows = bodies(d)
    prev = rows[first - 2].hash if first > 1 else "0" * 64
    with d.db.engine.begin() as conn:
        for r in rows[first - 1:]:
            body = new_body.get(r.seq, r.body)
            prev = chain(prev, body)
            conn.execute(update(d.db.audit).where(d.db.audit.c.seq == r.seq)
                         .values(body=body, hash=prev))
        conn.execute(update(d.db.head).values(seq=rows[-1].seq, hash=prev))


@pytest.mark.slow
def test_a_hostile_database_administrator_is_detected(deployment: Deployment, tmp_path: Path,
                                                      ) -> None:
    d = deployment
    made = json.loads(cli("keys", "create", "--org", "bank", *d.args(), "--json").stdout)
    reviewer = json.loads(cli("keys", "create", "--org", "bank", "--role", "reviewer", *d.args(),
                              "--json").stdout)
    from finmlsec.gateway.demo import credit_scoring_model

    record = json.loads(credit_scoring_model(seed=0).heldout.iloc[:1].to_json(orient="records"))[0]
    server = Server([*d.args(), "--audit-anchor", str(d.anchor)], tmp_path / "server.log")
    user = {"Authorization": f"Bearer {made['key']}"}
    try:
        with httpx.Client(base_url=server.url, timeout=10) as c:
            for _ in range(12):
                assert c.post("/v1/predict", json={"record": record}, headers=user).status_code == 200
            assert c.get("/v1/admin/audit", headers=user).status_code == 403
            fids = [c.post("/v1/feedback", json={"record": record, "label": label},
                           headers=user).json()["id"] for label in ("good", "bad")]
            for _ in range(12):
                assert c.post("/v1/predict", json={"record": record}, headers=user).status_code == 200
            r = c.post(f"/v1/admin/feedback/{fids[0]}/approve", json={"note": "checked"},
                       headers={"Authorization": f"Bearer {reviewer['key']}"})
            assert r.status_code == 200
    finally:
        server.stop()  # SIGTERM: the final head is anchored
    genuine = d.verify()
    assert genuine.returncode == 0, genuine.stderr
    assert "HMAC-SHA256" in genuine.stdout
    assert read_anchors(d.anchor, None)[-1].seq == len(bodies(d))
    snap = d.snapshot()

    # 1. truncate the newest 10 entries and set the head back to the (genuine) 10th from the end
    rows = bodies(d)
    keep = rows[-11]
    with d.db.engine.begin() as conn:
        conn.execute(delete(d.db.audit).where(d.db.audit.c.seq > keep.seq))
        conn.execute(update(d.db.head).values(seq=keep.seq, hash=keep.hash))
    out = d.verify()
    assert out.returncode == 5 and "deleted from the end" in out.stderr + out.stdout
    d.restore(snap)

    # 2. the 403 becomes a 200, every later hash recomputed, the head rewritten
    refused = next(r for r in bodies(d) if json.loads(r.body)["status"] == 403)
    rechain_from(d, refused.seq, {refused.seq: refused.body.replace('"status":403',
                                                                    '"status":200')})
    out = d.verify()
    assert out.returncode == 5 and f"entry {refused.seq} " in out.stderr + out.stdout
    # ... and a server refuses to append to the rewritten log
    with pytest.raises(RuntimeError, match="does not verify with the key"):
        Server([*d.args(), "--audit-anchor", str(d.anchor)], tmp_path / "refused.log")
    d.restore(snap)

    # 3. the second report approved in the table, with and without a forged audit entry
    with d.db.engine.begin() as conn:
        conn.execute(update(d.db.feedback).where(d.db.feedback.c.id == fids[1])
                     .values(status="approved", reviewed_by="key:admin"))
    out = d.verify()
    assert out.returncode == 5 and f"feedback {fids[1]}" in out.stderr + out.stdout
    exported = cli("feedback", "list", "--status", "approved", "--format", "json", *d.args(),
                   "--anchor", str(d.anchor))
    assert exported.returncode == 0, exported.stderr
    assert [i["id"] for i in json.loads(exported.stdout)] == [fids[0]]
    assert f"left out {fids[1]}" in exported.stderr
    last = bodies(d)[-1]
    forged = json.dumps({"action": "feedback.approve", "status": 200, "seq": last.seq + 1,
                         "detail": {"feedback_id": fids[1]}}, sort_keys=True,
                        separators=(",", ":"))
    with d.db.engine.begin() as conn:
        conn.execute(insert(d.db.audit).values(seq=last.seq + 1, body=forged,
                                               hash=chain(last.hash, forged)))
        conn.execute(update(d.db.head).values(seq=last.seq + 1, hash=chain(last.hash, forged)))
    assert d.verify().returncode == 5
    exported = cli("feedback", "list", "--status", "approved", "--format", "json", *d.args(),
                   "--anchor", str(d.anchor))
    assert exported.returncode == 5 and fids[1] not in exported.stdout
    d.restore(snap)
    assert d.verify().returncode == 0


def test_key_table_changes_outside_the_log_are_detected(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gw.db'}"
    made = json.loads(cli("keys", "create", "--org", "bank", "--db", url, "--json").stdout)
    db = GatewayDB(url)
    assert verify_log(db, anchors=[tmp_path / "gw.db.audit-anchor"]).ok
    with db.engine.begin() as conn:  # promote the key to admin in the table
        conn.execute(update(db.keys).where(db.keys.c.key_id == made["key_id"]).values(role="admin"))
    res = verify_log(db, anchors=[tmp_path / "gw.db.audit-anchor"])
    assert not res.ok and f"API key {made['key_id']} differs" in (res.problem or "")
    assert "role" in (res.problem or "")
    with db.engine.begin() as conn:
        conn.execute(update(db.keys).where(db.keys.c.key_id == made["key_id"])
                     .values(role="system_user"))
    rogue = db.create_key(org="bank", role="admin")  # inserted without an audit entry
    res = verify_log(db)
    assert not res.ok and f"API key {rogue.key_id} is not in the audit log" in (res.problem or "")


def test_writer_anchors_at_intervals_and_a_torn_last_line_is_ignored(tmp_path: Path) -> None:
    db = GatewayDB(f"sqlite:///{tmp_path / 'gw.db'}")
    w = open_writer(db, anchor_seconds=0.0)
    for i in range(5):
        w.submit({"action": "predict", "i": i}).result(timeout=30)
    w.close()
    anchor = tmp_path / "gw.db.audit-anchor"
    seqs = [a.seq for a in read_anchors(anchor, None)]
    assert seqs[-1] == 5 and seqs == sorted(seqs)
    with anchor.open("a") as f:
        f.write('{"seq": 9, "ha')  # a crash mid-write
    assert verify_log(db, anchors=[anchor]).ok
    with anchor.open("a") as f:
        f.write('\n{"seq": 5, "hash": "' + "0" * 64 + '", "mac": "x"}\n')  # not the key's MAC
    res = verify_log(db, anchors=[anchor])
    assert not res.ok and "not authenticated" in (res.problem or "")


def test_a_review_and_its_entry_are_one_transaction(tmp_path: Path) -> None:
    from finmlsec.errors import ConfigError
    from finmlsec.gateway.feedback import review

    db = GatewayDB(f"sqlite:///{tmp_path / 'gw.db'}")
    w = open_writer(db)
    row = feedback_row(key_id="k", org="bank", record={"age": 40}, label="good",
                       model_label="bad", model_confidence=0.6, flags=[])
    w.append_sync(submission_entry(row), feedback=row)
    review(db, w, row["id"], "reject", reviewer="cli:ops")
    n = len(bodies_of(db))
    with pytest.raises(ConfigError, match="already rejected"):
        review(db, w, row["id"], "approve", reviewer="cli:ops")
    assert len(bodies_of(db)) == n  # no entry for the refused decision
    assert verify_log(db).ok
