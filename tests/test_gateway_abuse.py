"""The gateway under abuse, as real ``finmlsec serve`` processes on 127.0.0.1, over SQLite and
PostgreSQL: admission decides from the headers before a body is read, unauthenticated floods are
throttled per address and aggregated in the audit log, malformed input is a 4xx (never a 5xx),
personal values stay out of the audit log, keys expire, rotate and need a second admin, listings
page, admin reads are audited, /metrics has its own listener and the API pages are off."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from finmlsec.gateway.audit import AuditWriter
from finmlsec.gateway.demo import credit_scoring_model
from finmlsec.gateway.feedback import feedback_row
from finmlsec.store.gateway import GatewayDB
from test_gateway_server import Server, free_port

POLICY = """
budget:
  lifetime: 1000
input:
  max_in_flight_per_key: 2
  unauthenticated_per_minute: 20
  refusals_audit_seconds: 1
"""


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    m = credit_scoring_model(seed=0)
    return json.loads(m.heldout.iloc[:50].to_json(orient="records"))


class Served:
    """A server, its database and keys."""

    def __init__(self, server: Server, db: GatewayDB, metrics_port: int) -> None:
        self.server, self.db, self.url, self.metrics_port = server, db, server.url, metrics_port
        self.keys = {name: db.create_key(org="bank", role=role).token for name, role in (
            ("user", "system_user"), ("spent", "system_user"), ("busy", "system_user"),
            ("admin", "admin"), ("admin2", "admin"), ("reviewer", "reviewer"))}

    def post(self, path: str, token: str | None, **kw: Any) -> httpx.Response:
        h = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.post(self.url + path, headers={**h, **kw.pop("headers", {})}, timeout=30,
                          **kw)

    def get(self, path: str, token: str | None, **kw: Any) -> httpx.Response:
        h = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.get(self.url + path, headers=h, timeout=30, **kw)

    def audit(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            r = self.get("/v1/admin/audit", self.keys["admin"],
                         params={"after": out[-1]["seq"] if out else 0, "limit": 1000})
            assert r.status_code == 200, r.text
            page = r.json()["entries"]
            out += page
            if len(page) < 1000:
                return out


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql",
                                                                marks=pytest.mark.postgres)])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp(request.param)
    policy = tmp / "policy.yaml"
    policy.write_text(POLICY)
    prefix = f"t{uuid.uuid4().hex[:10]}_"
    url = (f"sqlite:///{tmp / 'gw.db'}" if request.param == "sqlite"
           else str(request.getfixturevalue("pg_url")))
    db = GatewayDB(url, table_prefix=prefix)
    metrics_port = free_port()
    server = Server(["--db", url, "--table-prefix", prefix, "--policy", str(policy),
                     "--metrics-listen", f"127.0.0.1:{metrics_port}"], tmp / "server.log")
    try:
        yield Served(server, db, metrics_port)
    finally:
        server.stop()
        if request.param == "postgresql":
            db.drop_all()
        db.dispose()


def raw_request(url: str, token: str, length: int, sent: bytes) -> socket.socket:
    """A POST whose headers declare ``length`` bytes of which only ``sent`` are sent."""
    host, port = url.removeprefix("http://").split(":")
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(f"POST /v1/predict HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
              f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n".encode()
              + sent)
    return s


def status_of(s: socket.socket) -> int:
    head = s.recv(4096).split(b"\r\n", 1)[0]
    return int(head.split()[1])


def test_a_spent_budget_is_refused_before_the_body_is_read(served: Served,
                                                            records: list[dict[str, Any]]) -> None:
    token = served.keys["spent"]
    big = {"records": records * 20}  # 1,000 records: the whole lifetime budget
    assert served.post("/v1/predict", token, json=big).status_code == 200
    # a 5 MB body of which 20 bytes are sent: the answer comes without waiting for the rest
    s = raw_request(served.url, token, 5_000_000, b'{"columns": [], "da')
    try:
        assert status_of(s) == 429
    finally:
        s.close()
    # a declared record count is charged before the body too
    r = served.post("/v1/predict", token, json={"record": records[0]},
                    headers={"Record-Count": "1"})
    assert r.status_code == 429


def test_concurrent_requests_of_one_key_are_limited(served: Served,
                                                    records: list[dict[str, Any]]) -> None:
    token = served.keys["busy"]
    slow = [raw_request(served.url, token, 400_000, b'{"records": [') for _ in range(2)]
    try:
        time.sleep(0.5)  # both are admitted and waiting for their bodies
        r = served.post("/v1/predict", token, json={"record": records[0]})
        assert r.status_code == 429 and "at a time" in r.json()["detail"]
        other = served.post("/v1/predict", served.keys["user"], json={"record": records[0]})
        assert other.status_code == 200  # another key is not affected
    finally:
        for s in slow:
            s.close()


@pytest.mark.parametrize(("body", "content_type", "status"), [
    (b'{"record": ' + b"[" * 3000 + b"]" * 3000 + b"}", "application/json", 400),
    (b'{"record": {"age": 1, "age": 2}}', "application/json", 400),
    (b'{"record": {}}', "text/plain", 415),
    (json.dumps({"columns": [["age"]], "data": [[1]]}).encode(), "application/json", 422),
])
def test_malformed_bodies_are_4xx_and_audited(served: Served, body: bytes, content_type: str,
                                              status: int) -> None:
    r = served.post("/v1/predict", served.keys["user"], content=body,
                    headers={"Content-Type": content_type})
    assert r.status_code == status, r.text
    last = [e for e in served.audit() if e["action"] == "predict"][-1]
    assert last["status"] == status


@pytest.mark.parametrize(("field", "value"), [
    ("credit_amount", "2835"), ("credit_amount", " 5e1 "), ("credit_amount", True),
    ("checking_account", ["A11"]), ("checking_account", {"a": 1}), ("age", [12])])
def test_column_batches_refuse_what_the_record_form_refuses(
        served: Served, records: list[dict[str, Any]], field: str, value: Any) -> None:
    rec = dict(records[0], **{field: value})
    names = list(rec)
    by_records = served.post("/v1/predict", served.keys["user"], json={"records": [rec]})
    by_columns = served.post("/v1/predict", served.keys["user"],
                             json={"columns": names, "data": [[rec[n] for n in names]]})
    assert by_records.status_code == by_columns.status_code == 422
    assert by_records.json()["detail"] == by_columns.json()["detail"]


def test_personal_values_stay_out_of_the_audit_log(served: Served,
                                                   records: list[dict[str, Any]]) -> None:
    secret = "Jane Doe DE89370400440532013000"
    r = served.post("/v1/predict", served.keys["user"],
                    json={"record": dict(records[0], checking_account=secret)})
    assert r.status_code == 422 and secret in r.json()["detail"]  # the client sees its value
    entries = served.audit()
    last = [e for e in entries if e["action"] == "predict"][-1]
    assert last["status"] == 422 and "checking_account" in last["detail"]["reason"]
    assert not any("Jane" in json.dumps(e) or "DE8937" in json.dumps(e) for e in entries)


def test_key_lifecycle_roles_and_paged_audited_listings(served: Served) -> None:
    k = served.keys
    # an admin key made through the API works only once a second admin approves it
    made = served.post("/v1/admin/keys", k["admin"], json={"org": "bank", "role": "admin"})
    assert made.status_code == 201 and made.json()["pending_approval"] is True
    new = made.json()["key"]
    assert served.get("/v1/admin/audit", new).status_code == 401
    kid = made.json()["key_id"]
    assert served.post(f"/v1/admin/keys/{kid}/approve", k["admin"]).status_code == 403
    assert served.post(f"/v1/admin/keys/{kid}/approve", k["admin2"]).status_code == 200
    assert served.get("/v1/admin/audit", new).status_code == 200
    # expiry
    short = served.post("/v1/admin/keys", k["admin"],
                        json={"org": "bank", "role": "system_user", "expires_days": 30}).json()
    with served.db.engine.begin() as conn:
        conn.execute(update(served.db.keys).where(served.db.keys.c.key_id == short["key_id"])
                     .values(expires="2001-01-01T00:00:00+00:00"))
    assert served.get("/v1/admin/feedback", short["key"]).status_code == 401
    # rotation without a grace period: the old token stops, the new one works (the default
    # grace period: test_gateway_rotation.py)
    victim = served.post("/v1/admin/keys", k["admin"],
                         json={"org": "bank", "role": "reviewer"}).json()
    assert served.get("/v1/admin/feedback", victim["key"]).status_code == 200
    rotated = served.post(f"/v1/admin/keys/{victim['key_id']}/rotate?grace_seconds=0",
                          k["admin"])
    assert rotated.status_code == 200 and rotated.json()["key"] != victim["key"]
    assert served.get("/v1/admin/feedback", victim["key"]).status_code == 401
    assert served.get("/v1/admin/feedback", rotated.json()["key"]).status_code == 200
    # the reviewer reviews, the key administrator does not (and the reverse)
    assert served.get("/v1/admin/feedback", k["admin"]).status_code == 403
    assert served.post("/v1/admin/keys", k["reviewer"],
                       json={"org": "bank", "role": "admin"}).status_code == 403
    # paged key listing, every read audited
    seen, after = [], ""
    while True:
        page = served.get("/v1/admin/keys", k["admin"], params={"after": after, "limit": 2})
        assert page.status_code == 200
        seen += [x["key_id"] for x in page.json()["keys"]]
        after = page.json()["next"]
        if after is None:
            break
    assert len(seen) == len(set(seen)) == len(served.db.list_keys())
    assert "token_hash" not in page.text
    reads = [e for e in served.audit() if e["action"] in ("keys.list", "feedback.list")]
    assert sum(e["action"] == "keys.list" for e in reads) >= len(seen) // 2
    assert any(e["action"] == "feedback.list" for e in reads)


def test_the_quarantine_listing_pages_past_1000(served: Served) -> None:
    writer = AuditWriter(served.db)
    futures = [writer.submit({"action": "feedback", "status": 202}, feedback=feedback_row(
        key_id="k", org="bank", record={"i": i}, label="good", model_label="bad",
        model_confidence=0.5, flags=[])) for i in range(1005)]
    for f in futures:
        f.result(60)
    writer.close()
    got, after = 0, ""
    while True:
        r = served.get("/v1/admin/feedback", served.keys["reviewer"],
                       params={"after": after, "limit": 1000})
        got += len(r.json()["feedback"])
        after = r.json()["next"]
        if after is None:
            break
    assert got >= 1005


def test_metrics_have_their_own_listener_and_the_api_pages_are_off(served: Served) -> None:
    assert served.get("/metrics", None).status_code == 404
    m = httpx.get(f"http://127.0.0.1:{served.metrics_port}/metrics", timeout=10)
    assert m.status_code == 200 and "finmlsec_requests_total" in m.text
    assert served.get("/docs", None).status_code == 404
    assert served.get("/openapi.json", None).status_code == 200


def test_unauthenticated_floods_are_throttled_and_aggregated(served: Served,
                                                             records: list[dict[str, Any]]) -> None:
    before = len(served.audit())
    # the per-address limit counts in fixed one-minute windows, and the final check needs the
    # same window as the flood: start well inside one (a run that straddled got a 401 there)
    if time.time() % 60 > 40:
        time.sleep(60.5 - time.time() % 60)
    codes = [served.post("/v1/predict", f"fmsk_{i:012x}_forged", json={"record": records[0]}
                         ).status_code for i in range(60)]
    # at most 20 refusals a minute from one address (earlier tests' 401s count too), then 429
    # until the minute's window ends (60 requests may straddle two windows)
    first = codes.index(429)
    assert 0 < first <= 20 and set(codes[:first]) == {401} and codes.count(401) <= first + 20
    # a known key still works from the same address
    assert served.post("/v1/predict", served.keys["user"],
                       json={"record": records[0]}).status_code == 200
    time.sleep(1.2)  # the aggregation interval passes; the next refusal writes the entry
    assert served.post("/v1/predict", None, json={"record": records[0]}).status_code == 429
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        new = served.audit()[before:]
        agg = [e for e in new if e["action"] == "auth.refused"]
        if agg:
            break
        time.sleep(0.2)
    assert not [e for e in new if e["action"] == "predict" and e["status"] in (401, 429)]
    assert sum(e["detail"]["requests"] for e in agg) >= 60
    assert "127.0.0.1" not in json.dumps(agg)  # addresses as keyed digests


def test_storage_errors_do_not_name_the_store(tmp_path: Path,
                                              records: list[dict[str, Any]]) -> None:
    url = f"sqlite:///{tmp_path / 'gw.db'}"
    db = GatewayDB(url)
    token = db.create_key(org="bank", role="system_user").token
    closed = free_port()
    server = Server(["--db", url, "--redis", f"redis://127.0.0.1:{closed}/0"],
                    tmp_path / "server.log", ready="/v1/health")
    try:
        r = httpx.post(f"{server.url}/v1/predict", json={"record": records[0]}, timeout=30,
                       headers={"Authorization": f"Bearer {token}"})
    finally:
        server.stop()
        db.dispose()
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert str(closed) not in r.text and "127.0.0.1" not in r.text and "redis" not in r.text.lower()
