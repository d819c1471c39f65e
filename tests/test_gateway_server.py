"""The gateway as real uvicorn processes on 127.0.0.1: SIGKILL under load loses no acknowledged
feedback and the audit chain verifies after restart; two processes on one PostgreSQL and one Redis
enforce one budget."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from finmlsec.defences.ratelimit import RedisCounterStore
from finmlsec.gateway.audit_verify import verify_chain
from finmlsec.gateway.demo import credit_scoring_model
from finmlsec.store.gateway import GatewayDB

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``finmlsec serve SPEC`` (``demo`` unless told) in a child process."""

    def __init__(self, args: list[str], log: Path, ready: str = "/v1/ready",
                 spec: str | None = "demo") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log.open("ab")
        cmd = [sys.executable, "-m", "finmlsec.cli.main", "serve", *([spec] if spec else []),
               "--host", "127.0.0.1",
               "--port", str(self.port), *args]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, cwd=ROOT,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 240  # a loaded CI machine starts slowly
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}{ready}", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


@pytest.fixture(scope="module")
def record() -> dict:
    m = credit_scoring_model(seed=0)
    return json.loads(m.heldout.iloc[:1].to_json(orient="records"))[0]


@pytest.mark.slow
def test_sigkill_under_load_loses_no_acknowledged_feedback(tmp_path: Path, record: dict) -> None:
    url = f"sqlite:///{tmp_path / 'gw.db'}"
    db = GatewayDB(url)
    made = subprocess.run([sys.executable, "-m", "finmlsec.cli.main", "keys", "create", "--org",
                           "bank", "--db", url, "--json"], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    token = json.loads(made.stdout)["key"]  # created and audited as an operator would
    policy = tmp_path / "policy.yaml"  # six threads share one key: no rate limit to meet
    policy.write_text("budget: {requests_per_second: null}\n")
    server = Server(["--db", url, "--policy", str(policy)], tmp_path / "server.log")
    acked: list[str] = []
    errors: list[str] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(base_url=server.url, timeout=10,
                          headers={"Authorization": f"Bearer {token}"}) as c:
            while not stop.is_set():
                try:
                    r = c.post("/v1/feedback", json={"record": record, "label": "bad"})
                    c.post("/v1/predict", json={"record": record})
                except httpx.HTTPError:
                    continue  # the server died mid-request: not acknowledged
                if r.status_code == 202:
                    acked.append(r.json()["id"])
                else:
                    errors.append(r.text)

    threads = [threading.Thread(target=client) for _ in range(6)]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(acked) < 60 and time.monotonic() < deadline:
            time.sleep(0.05)
        server.kill()  # SIGKILL while the clients are still sending
        stop.set()
        for t in threads:
            t.join(15)
    finally:
        stop.set()
        server.stop()
    assert not errors and len(acked) >= 60
    with db.engine.connect() as conn:
        stored = set(conn.execute(select(db.feedback.c.id)).scalars())
    assert set(acked) <= stored  # nothing acknowledged was lost
    assert verify_chain(db).ok
    # restart on the same database: it serves, and the chain keeps verifying
    again = Server(["--db", url, "--policy", str(policy)], tmp_path / "server2.log")
    try:
        r = httpx.post(f"{again.url}/v1/predict", json={"record": record}, timeout=10,
                       headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200
    finally:
        again.stop()
    res = verify_chain(db)
    assert res.ok and res.entries >= 2 * len(acked)
    out = subprocess.run([sys.executable, "-m", "finmlsec.cli.main", "audit", "verify", "--db",
                          url], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0 and "audit chain ok" in out.stdout


@pytest.fixture
def shared(pg_url: str, redis_url: str) -> Iterator[tuple[str, str]]:
    run = uuid.uuid4().hex[:10]
    prefix, rprefix = f"t{run}_", f"finmlsec-test-{run}:"
    yield prefix, rprefix
    db = GatewayDB(pg_url, table_prefix=prefix)
    db.drop_all()
    db.dispose()
    RedisCounterStore(redis_url, prefix=rprefix).clear_prefix()


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
def test_two_processes_enforce_one_budget(tmp_path: Path, record: dict, pg_url: str,
                                          redis_url: str, shared: tuple[str, str]) -> None:
    prefix, rprefix = shared
    db = GatewayDB(pg_url, table_prefix=prefix)
    token = db.create_key(org="bank", role="system_user").token
    policy = tmp_path / "policy.yaml"
    policy.write_text("budget:\n  per_day: 25\n")
    args = ["--db", pg_url, "--table-prefix", prefix, "--redis", redis_url, "--redis-prefix",
            rprefix, "--policy", str(policy)]
    a = Server(args, tmp_path / "a.log")
    try:
        b = Server(args, tmp_path / "b.log")
        try:
            codes = {a.url: [], b.url: []}
            for i in range(40):
                base = (a.url, b.url)[i % 2]
                r = httpx.post(f"{base}/v1/predict", json={"record": record}, timeout=10,
                               headers={"Authorization": f"Bearer {token}"})
                codes[base].append(r.status_code)
                if r.status_code == 429:
                    assert int(r.headers["retry-after"]) > 0
        finally:
            b.stop()
    finally:
        a.stop()
    allowed = sum(c == 200 for cs in codes.values() for c in cs)
    assert allowed == 25  # one budget, not 25 per process
    assert all(c in (200, 429) for cs in codes.values() for c in cs)
    assert codes[a.url].count(200) > 0 and codes[b.url].count(200) > 0
    assert 429 in codes[a.url] and 429 in codes[b.url]
    res = verify_chain(db)
    assert res.ok and res.entries >= 40  # both processes wrote one chain
    db.dispose()
