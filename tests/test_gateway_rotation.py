"""Key rotation with a grace period: the old token keeps working for a while (default 300 s, set
per rotation), then stops; the audit chain records and verifies the rotated key's state."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from finmlsec.errors import ConfigError
from finmlsec.gateway.audit_verify import verify_chain, verify_log
from finmlsec.gateway.demo import DemoModel, credit_scoring_model
from finmlsec.gateway.keycache import KeyCache
from finmlsec.store.gateway import GatewayDB
from test_gateway import Env, auth, records


@pytest.fixture(scope="module")
def model() -> DemoModel:
    return credit_scoring_model(seed=0)


def test_the_old_token_works_until_the_grace_period_ends(tmp_path: Path) -> None:
    db = GatewayDB(f"sqlite:///{tmp_path / 'gw.db'}")
    k = db.create_key(org="bank", role="system_user")
    cache = KeyCache(db, ttl=0.2)
    new = db.rotate_key(k.key_id, grace_seconds=1.0)
    assert new is not None and new.key_id == k.key_id and new.token != k.token
    assert db.verify_token(k.token) is not None and db.verify_token(new.token) is not None
    assert cache.lookup(k.token) is not None and cache.lookup(new.token) is not None
    time.sleep(1.3)
    assert db.verify_token(k.token) is None and db.verify_token(new.token) is not None
    assert cache.lookup(k.token) is None  # the cache's refresh dropped it
    assert cache.lookup(new.token) is not None
    # a second rotation without grace: the previous token stops at once
    newer = db.rotate_key(k.key_id, grace_seconds=0)
    assert newer is not None
    assert db.verify_token(new.token) is None and db.verify_token(newer.token) is not None
    assert db.verify_token(k.token) is None  # the first token never comes back
    with pytest.raises(ConfigError, match="grace period"):
        db.rotate_key(k.key_id, grace_seconds=-1)
    db.revoke_key(k.key_id)
    assert db.rotate_key(k.key_id, grace_seconds=10) is None


def test_rotation_through_the_admin_api(model: DemoModel, tmp_path: Path) -> None:
    env = Env(model, tmp_path)
    rec = records(model, 1)
    victim = env.gw.db.verify_token(env.user)
    assert victim is not None

    async def go(c: httpx.AsyncClient) -> dict[str, int]:
        r = await c.post(f"/v1/admin/keys/{victim.key_id}/rotate", headers=auth(env.admin))
        assert r.status_code == 200 and r.json()["old_key_valid_seconds"] == 300
        new = r.json()["key"]
        out = {"old after default rotation": (await c.post(
            "/v1/predict", json={"records": rec}, headers=auth(env.user))).status_code,
            "new": (await c.post("/v1/predict", json={"records": rec},
                                 headers=auth(new))).status_code}
        r = await c.post(f"/v1/admin/keys/{victim.key_id}/rotate?grace_seconds=0",
                         headers=auth(env.admin))
        assert r.status_code == 200
        out["previous after rotation without grace"] = (await c.post(
            "/v1/predict", json={"records": rec}, headers=auth(new))).status_code
        out["newest"] = (await c.post("/v1/predict", json={"records": rec},
                                      headers=auth(r.json()["key"]))).status_code
        out["bad grace"] = (await c.post(f"/v1/admin/keys/{victim.key_id}/rotate?grace_seconds=-5",
                                         headers=auth(env.admin))).status_code
        return out

    assert env.run(go) == {"old after default rotation": 200, "new": 200,
                           "previous after rotation without grace": 401, "newest": 200,
                           "bad grace": 422}
    assert verify_chain(env.gw.db).ok


def test_a_grace_token_written_into_the_table_fails_verification(model: DemoModel,
                                                                 tmp_path: Path) -> None:
    """Whoever can write the key table cannot add a second working token unnoticed."""
    from sqlalchemy import update

    from finmlsec.store.gateway import hash_token

    env = Env(model, tmp_path)

    async def go(c: httpx.AsyncClient) -> str:
        r = await c.post("/v1/admin/keys", headers=auth(env.admin),
                         json={"org": "bank", "role": "system_user"})  # an audited key
        assert r.status_code == 201, r.text
        return str(r.json()["key_id"])

    key_id = env.run(go)

    def about_it() -> list[str]:
        return [p for p in verify_log(env.gw.db).problems if key_id in p]

    assert about_it() == []
    with env.gw.db.engine.begin() as c:
        c.execute(update(env.gw.db.keys).where(env.gw.db.keys.c.key_id == key_id)
                  .values(prev_token_hash=hash_token("forged"), prev_until="2999-01-01"))
    assert about_it() == [f"API key {key_id} differs from its last audited state "
                          "(prev_token_hash, prev_until)"]
