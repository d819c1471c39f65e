"""dos.load against a real uvicorn server on 127.0.0.1; refusal of non-loopback targets."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from finmlsec.attacks import ATTACKS, AttackData
from finmlsec.attacks.dos import LoadTest, require_loopback
from finmlsec.errors import CapabilityError, ConfigError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    app = FastAPI()
    state = {"n": 0}

    @app.post("/predict")
    async def predict(body: dict) -> dict:
        state["n"] += 1
        return {"labels": [1] * len(body.get("records", [0]))}

    @app.post("/limited")
    async def limited(body: dict) -> JSONResponse:
        state["n"] += 1
        if state["n"] % 2:
            return JSONResponse({"detail": "slow down"}, status_code=429)
        return JSONResponse({"labels": [1]})

    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="off")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(100):
        if srv.started:
            break
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=5)


def test_load_steps_report_throughput_and_latency(server: str) -> None:
    att = LoadTest(rates=(20.0, 40.0), step_seconds=0.5, max_requests=100, payload={"records": [{}]})
    r = att.run(None, AttackData(endpoint=f"{server}/predict"))
    assert r.metrics["steps"] == 2 and r.queries == 30
    assert r.metrics["step0_sent"] == 10 and r.metrics["step1_sent"] == 20
    for i in (0, 1):
        assert r.metrics[f"step{i}_errors"] == 0
        assert r.metrics[f"step{i}_throughput"] > 0
        assert 0 < r.metrics[f"step{i}_p50_ms"] <= r.metrics[f"step{i}_p99_ms"]
    assert r.success == 0.0 and r.curves["load"]["rate"] == [20.0, 40.0]
    assert r.to_json()


def test_bounded_by_max_requests_and_counts_rate_limited(server: str) -> None:
    att = LoadTest(rates=(50.0, 50.0, 50.0), step_seconds=0.2, max_requests=15,
                   payload={"records": [{}]})
    r = att.run(None, AttackData(endpoint=f"{server}/limited"))
    assert r.queries == 15 and r.metrics["steps"] == 2
    limited = r.metrics["step0_limited"] + r.metrics["step1_limited"]
    assert 5 <= limited <= 10
    assert r.success >= 0.4  # the worst step had many requests not served


def test_errors_counted_when_nothing_listens() -> None:
    port = _free_port()
    r = LoadTest(rates=(10.0,), step_seconds=0.3, timeout=0.5).run(
        None, AttackData(endpoint=f"http://127.0.0.1:{port}/predict"))
    assert r.metrics["step0_errors"] == 3 and r.success == 1.0


@pytest.mark.parametrize("url", ["http://10.0.0.1/predict", "http://example.com/x",
                                 "http://192.168.1.5:8000/"])
def test_refuses_non_loopback(url: str) -> None:
    with pytest.raises(ConfigError, match="loopback addresses only.*got host"):
        LoadTest(rates=(1.0,)).run(None, AttackData(endpoint=url))


def test_loopback_forms_and_validation() -> None:
    assert require_loopback("http://localhost:1/") == "localhost"
    assert require_loopback("http://[::1]:8000/") == "::1"
    assert require_loopback("http://127.5.0.1/") == "127.5.0.1"
    with pytest.raises(ConfigError, match="http:// or https://"):
        require_loopback("ftp://127.0.0.1/")
    with pytest.raises(ConfigError, match="'rates' parameter of LoadTest"):
        LoadTest(rates=()).run(None, AttackData(endpoint="http://127.0.0.1:1/"))
    with pytest.raises(ConfigError, match="'max_requests' parameter of LoadTest must be an int"):
        LoadTest(max_requests=0).run(None, AttackData(endpoint="http://127.0.0.1:1/"))
    with pytest.raises(CapabilityError, match="endpoint"):
        LoadTest().run(None, AttackData())
    assert ATTACKS.get("dos.load") is LoadTest


def test_load_against_our_gateway_meets_its_rate_limit(tmp_path) -> None:
    """The gateway (finmlsec serve's app) on a real uvicorn server: the per-client limit of 5
    requests a minute answers the rest of the step with 429, which dos.load counts apart."""
    import json

    import uvicorn

    from finmlsec.gateway.app import create_app
    from finmlsec.gateway.demo import credit_scoring_model
    from finmlsec.gateway.policy import Policy
    from finmlsec.gateway.settings import Settings

    model = credit_scoring_model(seed=0)
    app = create_app(
        Settings(db_url=f"sqlite:///{tmp_path / 'gw.db'}",
                 policy=Policy.model_validate({"budget": {"requests_per_minute": 5}})),
        target=model.target, schema=model.schema, reference=model.train,
    )
    token = app.state.gateway.db.create_key(org="bank", role="system_user").token
    record = json.loads(model.heldout.iloc[:1].to_json(orient="records"))
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if srv.started:
                break
            time.sleep(0.05)
        assert srv.started
        # the limit counts in fixed one-minute windows: a step that crosses a minute boundary
        # gets 5 more requests served (seen: 2 refused instead of 7), so start well inside one
        if time.time() % 60 > 50:
            time.sleep(60.5 - time.time() % 60)
        att = LoadTest(rates=(20.0,), step_seconds=0.6, timeout=3.0, slo_ms=3000,
                       payload={"records": record}, headers={"Authorization": f"Bearer {token}"})
        r = att.run(None, AttackData(endpoint=f"http://127.0.0.1:{port}/v1/predict"))
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
    assert r.metrics["step0_sent"] == 12
    assert r.metrics["step0_errors"] == 0
    assert r.metrics["step0_limited"] == 7  # 5 served, the rest refused by the rate limit
    assert r.metrics["step0_throughput"] > 0 and r.metrics["worst_not_served"] == pytest.approx(7 / 12)
