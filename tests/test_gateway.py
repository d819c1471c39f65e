"""The gateway through its ASGI interface (httpx transport, real model, real SQLite file)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from finmlsec.gateway.app import create_app
from finmlsec.gateway.audit import read_entries
from finmlsec.gateway.audit_verify import verify_chain
from finmlsec.gateway.demo import DemoModel, credit_scoring_model
from finmlsec.gateway.policy import Policy
from finmlsec.gateway.settings import Settings


@pytest.fixture(scope="module")
def model() -> DemoModel:
    return credit_scoring_model(seed=0)


def records(model: DemoModel, n: int, start: int = 0) -> list[dict[str, Any]]:
    return json.loads(model.heldout.iloc[start:start + n].to_json(orient="records"))


class Env:
    """An app on a SQLite file, with a system-user key, an admin key and a key of another org."""

    def __init__(self, model: DemoModel, tmp: Path, policy: dict[str, Any] | None = None,
                 durable: bool = True) -> None:
        self.url = f"sqlite:///{tmp / 'gw.db'}"
        self.app = create_app(
            Settings(db_url=self.url, policy=Policy.model_validate(policy or {}),
                     audit_durable=durable),
            target=model.target, schema=model.schema, reference=model.train,
        )
        self.gw = self.app.state.gateway
        db = self.gw.db
        self.user = db.create_key(org="bank", role="system_user").token
        self.other = db.create_key(org="broker", role="system_user").token
        self.admin = db.create_key(org="bank", role="admin").token
        self.reviewer = db.create_key(org="bank", role="reviewer").token

    def run(self, fn: Callable[[httpx.AsyncClient], Awaitable[Any]]) -> Any:
        async def main() -> Any:
            async with self.app.router.lifespan_context(self.app):
                transport = httpx.ASGITransport(app=self.app)
                async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
                    return await fn(c)

        return asyncio.run(main())


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_predict_one_record_and_batches(model: DemoModel, tmp_path: Path) -> None:
    env = Env(model, tmp_path)
    recs = records(model, 5)
    expected = model.target.predict(model.heldout.iloc[:5]).tolist()

    async def go(c: httpx.AsyncClient) -> list[httpx.Response]:
        h = auth(env.user)
        cols = model.schema.names
        return [
            await c.post("/v1/predict", json={"record": recs[0]}, headers=h),
            await c.post("/v1/predict", json={"records": recs}, headers=h),
            await c.post("/v1/predict", headers=h, json={
                "columns": cols, "data": [[r[k] for k in cols] for r in recs]}),
        ]

    one, many, cols = env.run(go)
    assert one.status_code == 200 and one.json()["labels"] == expected[:1]
    assert many.json()["labels"] == expected and cols.json()["labels"] == expected
    p = np.array(many.json()["probabilities"])
    np.testing.assert_allclose(p, model.target.predict_proba(model.heldout.iloc[:5]), atol=1e-9)
    # the start entry (the guards, PRADA's threshold) and the three requests
    assert verify_chain(env.gw.db).ok and verify_chain(env.gw.db).entries == 4


def test_auth_matrix(model: DemoModel, tmp_path: Path) -> None:
    env = Env(model, tmp_path, {"feedback": {"organisations": ["bank"]}})
    rec = records(model, 1)[0]
    revoked = env.gw.db.create_key(org="bank", role="system_user")
    env.gw.db.revoke_key(revoked.key_id)
    fb = {"record": rec, "label": "good"}

    async def go(c: httpx.AsyncClient) -> dict[str, int]:
        out = {}
        cases = {
            "predict/none": ("POST", "/v1/predict", None, {"record": rec}),
            "predict/garbage": ("POST", "/v1/predict", "not-a-key", {"record": rec}),
            "predict/forged": ("POST", "/v1/predict", env.user[:-4] + "AAAA", {"record": rec}),
            "predict/revoked": ("POST", "/v1/predict", revoked.token, {"record": rec}),
            "predict/user": ("POST", "/v1/predict", env.user, {"record": rec}),
            "predict/admin": ("POST", "/v1/predict", env.admin, {"record": rec}),
            "feedback/none": ("POST", "/v1/feedback", None, fb),
            "feedback/user": ("POST", "/v1/feedback", env.user, fb),
            "feedback/other-org": ("POST", "/v1/feedback", env.other, fb),
            "feedback/admin": ("POST", "/v1/feedback", env.admin, fb),
            "audit/none": ("GET", "/v1/admin/audit", None, None),
            "audit/user": ("GET", "/v1/admin/audit", env.user, None),
            "audit/admin": ("GET", "/v1/admin/audit", env.admin, None),
            "keys/user": ("POST", "/v1/admin/keys", env.user, {"org": "x", "role": "admin"}),
            "keys/admin": ("POST", "/v1/admin/keys", env.admin, {"org": "x", "role": "system_user"}),
            "health/none": ("GET", "/v1/health", None, None),
            "status/none": ("GET", "/v1/admin/status", None, None),
            "status/user": ("GET", "/v1/admin/status", env.user, None),
            "status/admin": ("GET", "/v1/admin/status", env.admin, None),
        }
        for name, (method, path, token, body) in cases.items():
            r = await c.request(method, path, json=body, headers=auth(token) if token else {})
            out[name] = r.status_code
        return out

    got = env.run(go)
    assert got == {
        "predict/none": 401, "predict/garbage": 401, "predict/forged": 401,
        "predict/revoked": 401, "predict/user": 200, "predict/admin": 403,
        "feedback/none": 401, "feedback/user": 202, "feedback/other-org": 403,
        "feedback/admin": 403, "audit/none": 401, "audit/user": 403, "audit/admin": 200,
        "keys/user": 403, "keys/admin": 201, "health/none": 200,
        "status/none": 401, "status/user": 403, "status/admin": 200,
    }
    # every decision is audited (the seven without a valid key in one aggregated entry, by client
    # address digest), and no key material is; the first entry is the process's start
    entries = read_entries(env.gw.db, limit=1000)
    bodies = [json.dumps(e) for e in entries]
    assert entries[0]["action"] == "gateway.start" and len(bodies) == 13
    refused = [e for e in entries if e["action"] == "auth.refused"]
    assert len(refused) == 1 and refused[0]["detail"]["requests"] == 7
    assert {(c["action"], c["status"]) for c in refused[0]["detail"]["counts"]} == {
        ("predict", 401), ("feedback", 401), ("administer", 401)}
    for token in (env.user, env.admin, env.other, revoked.token):
        assert not any(token.split("_", 2)[2] in b for b in bodies)
    stored = {k.token_hash for k in env.gw.db.list_keys()}
    assert env.user not in stored and all(len(h) == 64 for h in stored)


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b'{"record": {"age": NaN}}', 422, "missing field"),
        (b'{"record": {"zzz": 1}}', 422, "unknown field"),
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 422, "JSON object"),
        (b'{"records": []}', 422, "no records"),
        (b'{"record": 5}', 422, "expected an object"),
        (b'{"record": {}, "extra": 1}', 422, "unexpected fields"),
        (b'{"columns": ["a", "a"], "data": [[1, 2]]}', 422, "duplicates"),
        (b'{"columns": ["a"], "data": [[1, 2]]}', 422, "row 0 has 2 values"),
    ],
)
def test_malformed_payloads_are_clear_4xx(model: DemoModel, tmp_path: Path, body: bytes,
                                          status: int, fragment: str) -> None:
    env = Env(model, tmp_path)

    async def go(c: httpx.AsyncClient) -> httpx.Response:
        return await c.post("/v1/predict", content=body,
                            headers={**auth(env.user), "content-type": "application/json"})

    r = env.run(go)
    assert r.status_code == status, r.text
    assert fragment in r.json()["detail"]


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("age", float("nan"), "NaN"),
        ("age", float("inf"), "NaN and infinite"),
        ("age", 12, "below the minimum"),
        ("age", 30.5, "whole number"),
        ("age", True, "expected a number"),
        ("age", "30", "expected a number"),
        ("purpose", "yacht", "not an allowed category"),
        ("purpose", 3, "expected one of the categories"),
        ("credit_amount", 10**12, "above the maximum"),
        ("age", None, "value is required"),
    ],
)
def test_invalid_values_are_refused(model: DemoModel, tmp_path: Path, field: str, value: Any,
                                    fragment: str) -> None:
    env = Env(model, tmp_path)
    rec = records(model, 1)[0]
    rec[field] = value
    body = json.dumps({"record": rec}).encode()  # json writes NaN / Infinity literals

    async def go(c: httpx.AsyncClient) -> httpx.Response:
        return await c.post("/v1/predict", content=body,
                            headers={**auth(env.user), "content-type": "application/json"})

    r = env.run(go)
    assert r.status_code == 422, r.text
    assert fragment in r.json()["detail"] and field in r.json()["detail"]


def test_missing_field_oversized_payload_and_batch_limit(model: DemoModel, tmp_path: Path) -> None:
    env = Env(model, tmp_path, {"input": {"max_body_bytes": 20_000, "max_batch_rows": 10}})
    rec = records(model, 1)[0]
    del rec["age"]
    cols = model.schema.names
    rows = [[r[k] for k in cols] for r in records(model, 11)]

    async def go(c: httpx.AsyncClient) -> list[httpx.Response]:
        h = auth(env.user)
        return [
            await c.post("/v1/predict", json={"record": rec}, headers=h),
            await c.post("/v1/predict", json={"records": records(model, 60)}, headers=h),
            await c.post("/v1/predict", json={"columns": cols, "data": rows}, headers=h),
        ]

    missing, big, many = env.run(go)
    assert missing.status_code == 422 and "missing field 'age'" in missing.json()["detail"]
    assert big.status_code == 413 and "exceeds the limit" in big.json()["detail"]
    assert many.status_code == 422 and "batch limit of 10" in many.json()["detail"]


@pytest.mark.parametrize("mode", ["round", "truncate", "top_k", "label_only"])
def test_output_modification_uses_the_confidence_defences(model: DemoModel, tmp_path: Path,
                                                          mode: str) -> None:
    from finmlsec.defences import confidence

    env = Env(model, tmp_path, {"output": {"mode": mode, "decimals": 1, "k": 1}})
    recs = records(model, 20)

    async def go(c: httpx.AsyncClient) -> httpx.Response:
        return await c.post("/v1/predict", json={"records": recs}, headers=auth(env.user))

    body = env.run(go).json()
    raw = model.target.estimator
    X = model.heldout.iloc[:20]
    ref = {
        "round": confidence.RoundConfidence(raw, decimals=1, prefit=True),
        "truncate": confidence.TruncateConfidence(raw, decimals=1, prefit=True),
        "top_k": confidence.TopKConfidence(raw, k=1, prefit=True),
        "label_only": confidence.LabelOnly(raw, prefit=True),
    }[mode].fit(X, None)
    assert body["labels"] == [str(v) for v in raw.predict(X)]
    if mode == "label_only":
        assert body["probabilities"] is None
    else:
        np.testing.assert_allclose(body["probabilities"], ref.predict_proba(X), atol=1e-12)
        if mode != "top_k":  # with two classes the top-1 answer still determines the other
            assert not np.allclose(body["probabilities"], raw.predict_proba(X))


def test_rate_limit_and_budgets_answer_429_with_retry_after(model: DemoModel, tmp_path: Path) -> None:
    env = Env(model, tmp_path, {"budget": {"requests_per_minute": 3, "per_day": 6}})
    recs = records(model, 4)

    async def go(c: httpx.AsyncClient) -> list[httpx.Response]:
        h = auth(env.user)
        out = [await c.post("/v1/predict", json={"records": recs}, headers=h),  # 4 rows
               await c.post("/v1/predict", json={"records": recs[:3]}, headers=h),  # 7 > 6
               await c.post("/v1/predict", json={"records": recs[:2]}, headers=h)]  # 6 ok
        for _ in range(4):  # budgets are per client: another key has its own
            out.append(await c.post("/v1/predict", json={"record": recs[0]},
                                    headers=auth(env.other)))
        return out

    first, over_day, fits, *other = env.run(go)
    assert first.status_code == 200 and fits.status_code == 200
    assert over_day.status_code == 429 and "day" in over_day.json()["detail"]
    assert 0 < int(over_day.headers["retry-after"]) <= 86400
    assert [r.status_code for r in other] == [200, 200, 200, 429]
    assert 0 < int(other[-1].headers["retry-after"]) <= 60
    assert "per minute" in other[-1].json()["detail"]
    actions = [(e["action"], e["status"]) for e in read_entries(env.gw.db, limit=100)]
    assert actions.count(("predict", 429)) == 2 and actions.count(("predict", 200)) == 5


def test_lifetime_budget_has_no_retry_after(model: DemoModel, tmp_path: Path) -> None:
    env = Env(model, tmp_path, {"budget": {"lifetime": 2}})
    rec = records(model, 1)[0]

    async def go(c: httpx.AsyncClient) -> list[int | str | None]:
        h = auth(env.user)
        codes: list[int | str | None] = []
        for _ in range(3):
            r = await c.post("/v1/predict", json={"record": rec}, headers=h)
            codes += [r.status_code, r.headers.get("retry-after")]
        return codes

    assert env.run(go) == [200, None, 200, None, 429, None]


def test_feedback_is_quarantined_screened_and_reviewed(model: DemoModel, tmp_path: Path) -> None:
    env = Env(model, tmp_path, {"feedback": {"contradiction_confidence": 0.6}})
    X = model.heldout
    P = model.target.predict_proba(X)
    sure = int(np.argmax(P.max(axis=1)))  # the record the model is most confident about
    rec = json.loads(X.iloc[[sure]].to_json(orient="records"))[0]
    wrong = [c for c in ("bad", "good") if c != model.target.predict(X.iloc[[sure]])[0]][0]

    async def go(c: httpx.AsyncClient) -> tuple[Any, ...]:
        h = auth(env.user)
        a = await c.post("/v1/feedback", json={"record": rec, "label": wrong}, headers=h)
        bad = await c.post("/v1/feedback", json={"record": rec, "label": "maybe"}, headers=h)
        assert (await c.get("/v1/admin/feedback", headers=auth(env.admin))).status_code == 403
        listed = await c.get("/v1/admin/feedback?status=quarantined", headers=auth(env.reviewer))
        fid = a.json()["id"]
        ok = await c.post(f"/v1/admin/feedback/{fid}/approve", headers=auth(env.reviewer))
        again = await c.post(f"/v1/admin/feedback/{fid}/reject", headers=auth(env.reviewer))
        return a, bad, listed, ok, again

    a, bad, listed, ok, again = env.run(go)
    # the reporter learns nothing about the model's confidence; the operator sees the flag
    assert a.status_code == 202 and a.json() == {"id": a.json()["id"], "status": "quarantined"}
    assert bad.status_code == 422
    items = listed.json()["feedback"]
    assert [i["status"] for i in items] == ["quarantined"] and items[0]["record"] == rec
    assert items[0]["flags"] == ["contradicts_model"]
    assert ok.json()["status"] == "approved" and again.status_code == 404
    log = json.dumps(read_entries(env.gw.db, limit=100))
    assert rec["purpose"] not in log and "feedback.approve" in log  # no raw record in the log
    assert verify_chain(env.gw.db).ok


def test_health_ready_metrics_and_openapi(model: DemoModel, tmp_path: Path) -> None:
    env = Env(model, tmp_path)

    async def go(c: httpx.AsyncClient) -> list[httpx.Response]:
        await c.post("/v1/predict", json={"record": records(model, 1)[0]}, headers=auth(env.user))
        return [await c.get(p) for p in ("/v1/health", "/v1/ready", "/metrics", "/openapi.json")]

    health, ready, metrics, openapi = env.run(go)
    assert health.json() == {"status": "ok"}
    assert ready.json()["checks"] == {"database": "ok", "counters": "ok", "model": "ok"}
    assert 'finmlsec_requests_total{endpoint="predict",status="200"} 1.0' in metrics.text
    paths = openapi.json()["paths"]
    assert {"/v1/predict", "/v1/feedback", "/v1/health", "/v1/ready", "/metrics"} <= set(paths)
    body = paths["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    record = body["oneOf"][0]["properties"]["record"]
    assert record["properties"]["age"]["minimum"] == model.schema["age"].min


def test_input_screening_refuses_out_of_distribution_records(model: DemoModel, tmp_path: Path) -> None:
    env = Env(model, tmp_path, {"screening": {"enabled": True, "defence": "input_screen.ood",
                                              "params": {"random_state": 0}}})
    normal = records(model, 25)
    odd = json.loads(model.schema.sample_uniform(25, 0).to_json(orient="records"))
    gw = env.gw

    async def go(c: httpx.AsyncClient) -> list[int]:
        codes = []
        for r in normal + odd:
            resp = await c.post("/v1/predict", json={"record": r}, headers=auth(env.user))
            codes.append(resp.status_code)
        return codes

    codes = env.run(go)
    refused_normal = codes[:25].count(422) / 25
    refused_odd = codes[25:].count(422) / 25
    assert set(codes) <= {200, 422}
    assert refused_normal <= 0.12 and refused_odd >= 0.5, (refused_normal, refused_odd)
    assert gw.guards.screen is not None


def test_squeeze_screen_is_live(model: DemoModel, tmp_path: Path) -> None:
    """``input_screen.squeeze`` refuses about its calibrated share of in-distribution records
    (before SqueezeDetector followed the outlier convention it could never refuse anything)."""
    env = Env(model, tmp_path, {"screening": {"enabled": True, "defence": "input_screen.squeeze",
                                              "params": {"fpr": 0.2}}})

    async def go(c: httpx.AsyncClient) -> list[int]:
        return [(await c.post("/v1/predict", json={"record": r}, headers=auth(env.user))).status_code
                for r in records(model, 60)]

    codes = env.run(go)
    assert set(codes) <= {200, 422}
    assert 3 <= codes.count(422) <= 24, codes.count(422)
