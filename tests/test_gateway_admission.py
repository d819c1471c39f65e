"""The per-process concurrency limit (``input.max_in_flight``): beyond it, 503 with Retry-After."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from finmlsec.gateway.admission import InFlight
from finmlsec.gateway.audit import read_entries
from finmlsec.gateway.demo import DemoModel, credit_scoring_model
from test_gateway import Env, auth, records


@pytest.fixture(scope="module")
def model() -> DemoModel:
    return credit_scoring_model(seed=0)


def test_in_flight_counts_every_key_together() -> None:
    f = InFlight(limit=2, total=3)
    assert [f.enter("a"), f.enter("a"), f.enter("a"), f.enter("b")] == [True, True, False, True]
    assert f.full()
    f.leave("a")
    assert not f.full() and f.enter("c") and f.full()
    f.leave("nobody")  # a key never counted in changes nothing
    assert f.full()


def test_a_process_answers_at_most_max_in_flight_requests_at_once(model: DemoModel,
                                                                   tmp_path: Path) -> None:
    """Beyond ``input.max_in_flight`` requests of all keys in one process: 503 with Retry-After,
    audited; once a slot is free the next request is answered."""
    env = Env(model, tmp_path, {"input": {"max_in_flight": 2, "max_in_flight_per_key": 2}})
    rec = records(model, 1)
    flight = env.gw.in_flight

    async def go(c: httpx.AsyncClient) -> list[httpx.Response]:
        assert flight.enter("held-1") and flight.enter("held-2")  # two requests being answered
        full = await c.post("/v1/predict", json={"records": rec}, headers=auth(env.user))
        flight.leave("held-1")
        ok = await c.post("/v1/predict", json={"records": rec}, headers=auth(env.user))
        flight.leave("held-2")
        return [full, ok]

    full, ok = env.run(go)
    assert full.status_code == 503 and full.headers["retry-after"] == "1"
    assert "retry shortly" in full.json()["detail"]
    assert ok.status_code == 200 and not flight.full()
    statuses = [e["status"] for e in read_entries(env.gw.db) if e["action"] == "predict"]
    assert sorted(statuses) == [200, 503]


def test_a_guard_waiting_on_the_database_does_not_stall_other_requests(model: DemoModel,
                                                                       tmp_path: Path) -> None:
    """The day budget is charged in the database; while another connection holds SQLite's write
    lock, that charge waits on the guards' threads and the event loop keeps answering."""
    import asyncio
    import sqlite3
    import threading
    import time

    env = Env(model, tmp_path, {"budget": {"per_day": 1000}})
    rec = records(model, 1)
    held = threading.Event()

    def hold_lock() -> None:
        con = sqlite3.connect(str(tmp_path / "gw.db"), isolation_level=None, timeout=30)
        con.execute("BEGIN IMMEDIATE")
        held.set()
        time.sleep(1.5)
        con.execute("COMMIT")
        con.close()

    async def go(c: httpx.AsyncClient) -> tuple[httpx.Response, float, float]:
        # warm up: the key is cached and the model compiled before the lock is taken
        assert (await c.post("/v1/predict", json={"records": rec},
                             headers=auth(env.user))).status_code == 200
        t = threading.Thread(target=hold_lock)
        t.start()
        held.wait(10)
        t0 = time.perf_counter()

        async def predict() -> tuple[httpx.Response, float]:
            r = await c.post("/v1/predict", json={"records": rec}, headers=auth(env.user))
            return r, time.perf_counter() - t0

        async def health() -> float:
            await asyncio.sleep(0.1)  # the prediction is waiting on the lock by then
            r = await c.get("/v1/health")
            assert r.status_code == 200
            return time.perf_counter() - t0

        (r, slow), fast = await asyncio.gather(predict(), health())
        t.join()
        return r, slow, fast

    r, slow, fast = env.run(go)
    assert r.status_code == 200 and slow >= 1.2
    assert fast < 0.8, f"health answered after {fast:.2f} s: the event loop was blocked"
