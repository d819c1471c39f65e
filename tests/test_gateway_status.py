"""A real ``finmlsec serve`` on loopback puts PRADA's per-model threshold on the record (the audit
log's ``gateway.start`` entry) and shows it to admins (``GET /v1/admin/status``), not to anonymous
callers; ``--key-rotation-grace`` sets how long a rotated key's old token keeps working, and
``finmlsec keys rotate`` rotates from the command line."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from finmlsec.gateway.audit import read_entries
from finmlsec.gateway.audit_verify import verify_chain
from finmlsec.gateway.demo import credit_scoring_model
from finmlsec.store.gateway import GatewayDB
from test_audit_integrity import cli
from test_gateway_server import Server


def test_prada_threshold_on_the_record_and_the_rotation_grace_flag(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gw.db'}"
    admin = json.loads(cli("keys", "create", "--org", "bank", "--role", "admin", "--db", url,
                           "--json").stdout)["key"]
    user = json.loads(cli("keys", "create", "--org", "bank", "--db", url, "--json").stdout)
    record = json.loads(credit_scoring_model(seed=0).heldout.iloc[:1]
                        .to_json(orient="records"))[0]
    log = tmp_path / "server.log"
    server = Server(["--db", url, "--key-rotation-grace", "7"], log)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as c:
            assert "threshold" not in c.get("/v1/health").text  # nothing for an attacker
            assert c.get("/v1/admin/status").status_code == 401
            assert c.get("/v1/admin/status",
                         headers={"Authorization": f"Bearer {user['key']}"}).status_code == 403
            status = c.get("/v1/admin/status",
                           headers={"Authorization": f"Bearer {admin}"}).json()
            prada = status["guards"]["extraction"]
            assert prada["threshold_source"] == "calibrated"  # the demo has reference data
            assert 0 < prada["threshold"] <= 0.82
            assert prada["calibration"]["threshold"] == prada["threshold"]
            assert status["key_rotation_grace_seconds"] == 7
            r = c.post(f"/v1/admin/keys/{user['key_id']}/rotate",
                       headers={"Authorization": f"Bearer {admin}"})
            assert r.status_code == 200 and r.json()["old_key_valid_seconds"] == 7
            new = r.json()["key"]
            for token in (user["key"], new):  # both work during the grace period
                assert c.post("/v1/predict", json={"record": record},
                              headers={"Authorization": f"Bearer {token}"}).status_code == 200
            time.sleep(7 + 2.5)  # the grace period, then the servers' key cache
            assert c.post("/v1/predict", json={"record": record},
                          headers={"Authorization": f"Bearer {user['key']}"}).status_code == 401
            assert c.post("/v1/predict", json={"record": record},
                          headers={"Authorization": f"Bearer {new}"}).status_code == 200
    finally:
        server.stop()
    text = log.read_text()
    assert f"PRADA threshold W < {prada['threshold']:.3f}, calibrated" in text
    assert "old token works 7 s more" in text
    db = GatewayDB(url)
    start = [e for e in read_entries(db, limit=1000) if e["action"] == "gateway.start"]
    assert len(start) == 1
    assert start[0]["detail"]["guards"]["extraction"] == prada
    assert any(e["action"] == "status.read" for e in read_entries(db, limit=1000))
    # the command line rotates too, audited, with its own grace period
    out = cli("keys", "rotate", user["key_id"], "--grace-seconds", "0", "--db", url, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["old_key_valid_seconds"] == 0
    assert db.verify_token(new) is None and db.verify_token(json.loads(out.stdout)["key"])
    assert read_entries(db, limit=1000)[-1]["action"] == "keys.rotate"
    assert verify_chain(db).ok
    bad = cli("keys", "rotate", user["key_id"], "--grace-seconds", "-1", "--db", url)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
