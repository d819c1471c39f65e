"""The gateway's key cache: verified keys stay cached, and a key revoked or deleted elsewhere
(the CLI, another server) is refused within ``key_cache_seconds``; 0 disables the cache."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import delete

from finmlsec.gateway.demo import DemoModel, credit_scoring_model
from finmlsec.gateway.policy import Policy
from finmlsec.gateway.service import Gateway
from finmlsec.gateway.settings import Settings
from finmlsec.store.gateway import GatewayDB


@pytest.fixture(scope="module")
def model() -> DemoModel:
    return credit_scoring_model(seed=0)


def gateway(model: DemoModel, url: str, ttl: float) -> Gateway:
    return Gateway(Settings(db_url=url, policy=Policy(), key_cache_seconds=ttl),
                   target=model.target, schema=model.schema)


def test_revoked_and_deleted_keys_are_refused_within_the_cache_period(model: DemoModel,
                                                                       tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    gw = gateway(model, url, ttl=0.3)
    other = GatewayDB(url)  # like the CLI, in another process
    try:
        a, b, c = (other.create_key(org="bank", role="system_user") for _ in range(3))
        assert [gw.keys.lookup(k.token).key_id for k in (a, b, c)] == [a.key_id, b.key_id,
                                                                       c.key_id]
        assert other.revoke_key(a.key_id)
        with other.engine.begin() as conn:
            conn.execute(delete(other.keys).where(other.keys.c.key_id == b.key_id))
        time.sleep(0.35)
        assert gw.keys.lookup(a.token) is None  # revoked
        assert gw.keys.lookup(b.token) is None  # deleted
        p = gw.keys.lookup(c.token)
        assert p is not None and p.key_id == c.key_id and p.role == "system_user"
        assert gw.keys.lookup(c.token[:-2] + "AA") is None  # a forged token never is cached
        d = other.create_key(org="bank", role="admin")  # a new key works at once
        assert gw.keys.lookup(d.token).role == "admin"
    finally:
        gw.close()
        other.dispose()


def test_no_cache_sees_a_revocation_at_once(model: DemoModel, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    gw = gateway(model, url, ttl=0.0)
    other = GatewayDB(url)
    try:
        k = other.create_key(org="bank", role="system_user")
        assert gw.keys.lookup(k.token) is not None
        other.revoke_key(k.key_id)
        assert gw.keys.lookup(k.token) is None
    finally:
        gw.close()
        other.dispose()


def test_the_cache_is_bounded_and_never_dropped_whole(tmp_path: Path) -> None:
    """Past its bound the cache forgets the least recently used tokens one at a time; the keys
    in use stay cached (no look-up) however many unknown tokens arrive."""
    from finmlsec.gateway.keycache import KeyCache, Miss

    db = GatewayDB(f"sqlite:///{tmp_path / 'k.db'}")
    try:
        keys = [db.create_key(org="bank", role="system_user") for _ in range(3)]
        cache = KeyCache(db, ttl=60, max_entries=50)
        for k in keys:
            assert cache.lookup(k.token) is not None
        for i in range(500):  # a flood of forged tokens
            assert cache.lookup(f"fmsk_{i:012x}_forged") is None
            if i % 10 == 0:
                for k in keys:  # the clients in use keep being served from memory
                    assert not isinstance(cache.cached(k.token), Miss)
        assert len(cache) == 50
        assert all(not isinstance(cache.cached(k.token), Miss) for k in keys)
        assert isinstance(cache.cached("fmsk_000000000000_forged"), Miss)  # the oldest went
    finally:
        db.dispose()
