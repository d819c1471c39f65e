"""The lean ASGI path of ``POST /v1/predict`` against the FastAPI route it stands in front of:
the same request sequence, sent to an app with the lean path and to one without it (same
database, so the same keys and digest secret), gives the same statuses, headers, bodies and
audit entries, refusals and storage failures included."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import text

from finmlsec.gateway.app import create_app
from finmlsec.gateway.audit import read_entries
from finmlsec.gateway.demo import DemoModel, credit_scoring_model
from finmlsec.gateway.policy import Policy
from finmlsec.gateway.settings import Settings

POLICY = {
    "output": {"mode": "round", "decimals": 2},
    "budget": {"per_day": 40},
    "extraction": {"enabled": True},
    "screening": {"enabled": True, "defence": "input_screen.ood", "params": {"random_state": 0}},
    "input": {"max_body_bytes": 40_000, "max_batch_rows": 30},
}


@pytest.fixture(scope="module")
def model() -> DemoModel:
    return credit_scoring_model(seed=0)


def apps(model: DemoModel, tmp: Path) -> tuple[Any, Any, dict[str, str]]:
    url = f"sqlite:///{tmp / 'gw.db'}"
    made = [create_app(Settings(db_url=url, policy=Policy.model_validate(POLICY),
                                lean_predict=lean),
                       target=model.target, schema=model.schema, reference=model.train)
            for lean in (True, False)]
    db = made[0].state.gateway.db
    keys = {"user": db.create_key(org="bank", role="system_user").token,
            "burst": db.create_key(org="bank", role="system_user").token,
            "admin": db.create_key(org="bank", role="admin").token}
    return made[0], made[1], keys


def requests(model: DemoModel, keys: dict[str, str],
             far: dict[str, Any]) -> list[tuple[str, str, dict[str, str], bytes]]:
    recs = json.loads(model.heldout.iloc[:8].to_json(orient="records"))
    names = model.schema.names
    huge = dict(recs[1], age=10**400)

    def post(key: str | None, body: Any, **headers: str) -> tuple[str, str, dict[str, str], bytes]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        h = {"content-type": "application/json", **headers}
        if key is not None:
            h["authorization"] = f"Bearer {keys.get(key, key)}"
        return ("POST", "/v1/predict", h, raw)

    return [
        post("user", {"record": recs[0]}),
        post("user", {"records": recs[1:6]}),
        post("user", {"columns": names, "data": [[r[n] for n in names] for r in recs[4:8]]}),
        post(None, {"record": recs[0]}),
        post("fmsk_nothing_here", {"record": recs[0]}),
        post(None, {"record": recs[0]}, authorization=f"Bearer   {keys['user']}  "),
        post(None, {"record": recs[0]}, authorization=f"Basic {keys['user']}"),
        post("admin", {"record": recs[0]}),
        post("user", b"{not json"),
        post("user", b"x" * 45_000),
        post("user", {"record": dict(recs[0], zzz=1)}),
        post("user", {"record": huge}),
        post("user", {"columns": names, "data": [[huge[n] for n in names]]}),
        post("user", [1, 2]),
        post("user", {"records": []}),
        post("user", {"records": recs * 4}),
        post("user", {"record": far}),
        post("burst", {"records": (recs * 4)[:25]}),
        post("burst", {"records": (recs * 4)[:25]}),  # 50 > 40 rows a day: 429, Retry-After
        ("GET", "/v1/predict", {"authorization": f"Bearer {keys['user']}"}, b""),
    ]


async def send_all(app: Any, reqs: list[tuple[str, str, dict[str, str], bytes]]) -> list[Any]:
    out = []
    async with app.router.lifespan_context(app):
        t = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=t, base_url="http://gw") as c:
            for method, path, headers, body in reqs:
                r = await c.request(method, path, headers=headers, content=body)
                out.append((r.status_code, r.headers.raw, r.content))
    return out


def _raw(app: Any) -> bool:
    """Whether the app answers ``POST /v1/predict`` by the raw route (its first match)."""
    from starlette.routing import Match, Route

    scope = {"type": "http", "path": "/v1/predict", "method": "POST"}
    first = next(r for r in app.router.routes if r.matches(scope)[0] == Match.FULL)
    return type(first) is Route and first.path == "/v1/predict"


def normalised(answer: tuple[int, list[tuple[bytes, bytes]], bytes]) -> Any:
    """The answer with what legitimately differs between two requests blanked: the request id
    of a 200, and the seconds until the daily budget refills of a 429."""
    status, headers, body = answer
    if status == 200:
        body = re.sub(rb'"request_id":"[0-9a-f]{32}"', b'"request_id":"-"', body)
    if status == 429:
        body = re.sub(rb"\d+ s", b"N s", body)
        headers = [(k, b"N" if k == b"retry-after" else v) for k, v in headers]
    return status, headers, body


def audit_view(db: Any, after: int) -> list[Any]:
    out = []
    for e in read_entries(db, after=after, limit=1000):
        detail = {k: v for k, v in (e.get("detail") or {}).items()
                  if k not in ("request_id", "since", "until")}
        if "reason" in detail:
            detail["reason"] = re.sub(r"\d+ s", "N s", detail["reason"])
        out.append((e["action"], e["status"], e["key_id"], e["role"], detail))
    return out


def test_lean_path_answers_and_audits_exactly_as_the_fastapi_route(model: DemoModel,
                                                                    tmp_path: Path) -> None:
    lean, routed, keys = apps(model, tmp_path)
    assert _raw(lean) and not _raw(routed)
    gw = lean.state.gateway
    odd = int(np.flatnonzero(gw.guards.screen_rows(model.heldout))[0])  # a record the screen refuses
    far = json.loads(model.heldout.iloc[[odd]].to_json(orient="records"))[0]
    reqs = requests(model, keys, far)
    db = gw.db
    start = len(read_entries(db, limit=10_000))
    got_lean = asyncio.run(send_all(lean, reqs))
    middle = len(read_entries(db, limit=10_000))
    # the two apps share one database, and so the durable (daily) budgets: the routed app's run
    # starts from empty counters as the lean app's did
    from sqlalchemy import delete

    sql = routed.state.gateway.store.durable.sql
    with sql.engine.begin() as conn:
        conn.execute(delete(sql.counters))
    got_routed = asyncio.run(send_all(routed, reqs))
    statuses = [a[0] for a in got_lean]
    assert statuses == [200, 200, 200, 401, 401, 200, 401, 403, 400, 413, 422, 422, 422, 422,
                        422, 422, 422, 200, 429, 405], statuses
    for i, (a, b) in enumerate(zip(got_lean, got_routed, strict=True)):
        assert normalised(a) == normalised(b), (i, a, b)
    assert dict(got_lean[3][1])[b"www-authenticate"] == b"Bearer"
    assert int(dict(got_lean[18][1])[b"retry-after"]) >= 1
    assert json.loads(got_lean[0][2])["probabilities"][0] == [
        round(p, 2) for p in model.target.predict_proba(model.heldout.iloc[:1])[0]]
    # the same audit entries (the screen's refusal and the 405 included or not, alike)
    first, second = audit_view(db, start)[:middle - start], audit_view(db, middle)
    # every request but the 405 (FastAPI's, before any guard) and the three 401s, which are
    # counted in one aggregated entry written when the app stops
    assert len(first) == 17 and first[-1][:2] == ("auth.refused", 401)
    assert first[-1][4]["requests"] == 3
    assert first == second
    # the same metrics
    for app in (lean, routed):
        text_ = app.state.metrics.render().decode()
        assert 'finmlsec_requests_total{endpoint="predict",status="200"} 5.0' in text_
        assert 'finmlsec_requests_total{endpoint="predict",status="401"} 3.0' in text_


def test_lean_path_storage_failure_is_the_same_503(model: DemoModel, tmp_path: Path) -> None:
    lean, routed, keys = apps(model, tmp_path)
    rec = json.loads(model.heldout.iloc[:1].to_json(orient="records"))[0]
    req = [("POST", "/v1/predict", {"authorization": f"Bearer {keys['user']}"},
            json.dumps({"record": rec}).encode())]
    with lean.state.gateway.db.engine.begin() as conn:
        conn.execute(text("DROP TABLE gw_audit"))
    a, b = asyncio.run(send_all(lean, req))[0], asyncio.run(send_all(routed, req))[0]
    assert a[0] == 503 and dict(a[1])[b"retry-after"] == b"1"
    assert b"storage unavailable" in a[2]
    assert a == b


def test_large_bodies_are_parsed_checked_and_answered_in_the_model_thread_alike(
        model: DemoModel, tmp_path: Path) -> None:
    from finmlsec.gateway.routers.predict import LARGE_BODY

    url = f"sqlite:///{tmp_path / 'gw.db'}"
    app = create_app(Settings(db_url=url, policy=Policy.model_validate(
        {"output": {"mode": "round", "decimals": 2}})),
        target=model.target, schema=model.schema, reference=model.train)
    token = app.state.gateway.db.create_key(org="bank", role="system_user").token
    X = model.heldout.sample(1500, replace=True, random_state=3)
    names = model.schema.names
    rows = json.loads(X[names].to_json(orient="values"))
    good = json.dumps({"columns": names, "data": rows}).encode()
    bad_rows = [list(r) for r in rows]
    bad_rows[1234][names.index("age")] = 200
    bad = json.dumps({"columns": names, "data": bad_rows}).encode()
    broken = good[:-2]
    assert min(len(good), len(bad), len(broken)) > LARGE_BODY
    h = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    got = asyncio.run(send_all(app, [("POST", "/v1/predict", h, b) for b in (good, bad, broken)]))
    assert [g[0] for g in got] == [200, 422, 400]
    answer = json.loads(got[0][2])
    assert answer["labels"] == [str(v) for v in model.target.predict(X)]
    assert answer["probabilities"][:3] == [[round(p, 2) for p in r]
                                           for r in model.target.predict_proba(X.iloc[:3])]
    assert "age" in json.loads(got[1][2])["detail"] and "maximum" in json.loads(got[1][2])["detail"]
    assert "not valid JSON" in json.loads(got[2][2])["detail"]
