"""The gateway's tables: API keys (hashed), the hash-chained audit log and quarantined feedback.

SQLAlchemy 2 Core on SQLite by default (WAL, synchronous FULL, writers serialised with
``BEGIN IMMEDIATE``) or PostgreSQL by URL (the audit chain head is locked with ``FOR UPDATE``), so
several server processes can share keys, the audit chain and the quarantine. The tables belong to
the store's one Alembic migration history (with the scan's runs and units): opening a
:class:`GatewayDB` brings the database up to the newest revision, like :meth:`Store.open`.
``table_prefix`` prefixes every table (and Alembic's version table), so several gateways (or
test runs) can share one database.

Example:
    >>> db = GatewayDB("sqlite://")
    >>> key = db.create_key(org="bank", role="system_user", name="scoring app")
    >>> db.find_key(key.key_id).org, key.token.startswith("fmsk_")
    ('bank', True)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from finmlsec.errors import ConfigError, StoreError

ROLES = ("system_user", "reviewer", "admin")
"""``system_user`` predicts (and reports false predictions if its organisation may);
``reviewer`` reads and decides the feedback quarantine (raw applicant records); ``admin`` reads
the audit log, manages keys and lifts blocks. A new admin key made through the API works only
once a second admin approves it."""

GENESIS = "0" * 64
KEY_PREFIX = "fmsk"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def hash_token(token: str) -> str:
    """SHA-256 of an API key. Keys carry 256 random bits, so a fast hash is enough (no password
    stretching is needed against guessing); only this digest is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    org: str
    role: str
    name: str
    created: str
    revoked: str | None
    token_hash: str
    expires: str | None = None
    pending_by: str | None = None
    prev_token_hash: str | None = None
    prev_until: str | None = None

    @property
    def active(self) -> bool:
        """Not revoked, not expired, and (an admin key made through the API) approved."""
        return (self.revoked is None and self.pending_by is None
                and (self.expires is None or self.expires > now_iso()))

    def as_dict(self) -> dict[str, Any]:
        """What an administrator may see (never the token's hash)."""
        return {"key_id": self.key_id, "org": self.org, "role": self.role, "name": self.name,
                "created": self.created, "revoked": self.revoked, "expires": self.expires,
                "pending_approval": self.pending_by is not None}


@dataclass(frozen=True)
class NewKey:
    """A freshly created key: ``token`` is shown once and never stored."""

    key_id: str
    token: str
    org: str
    role: str


class GatewayDB:
    """Open (and create or migrate) the gateway tables at ``url``."""

    def __init__(self, url: str, *, table_prefix: str = "", durable: bool = True) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        try:
            self.engine = self._engine(url, durable)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise StoreError(f"cannot open the gateway database {_redact(url)!r}: {exc}") from None
        self.prefix = table_prefix
        self.meta = MetaData()
        t = gateway_tables(self.meta, table_prefix)
        self.keys, self.audit, self.head = t["keys"], t["audit"], t["head"]
        self.feedback, self.settings = t["feedback"], t["settings"]
        self.migrate()

    @staticmethod
    def _engine(url: str, durable: bool) -> Engine:
        if not url.startswith("sqlite"):
            return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
        memory = url in ("sqlite://", "sqlite:///:memory:")
        kw: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30.0}}
        if memory:
            kw["poolclass"] = StaticPool
        engine = create_engine(url, **kw)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _rec: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            if not memory:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine

    def migrate(self) -> None:
        """Bring the tables up to the newest migration (idempotent, safe to race)."""
        from finmlsec.store.db import migrate

        migrate(self.engine, prefix=self.prefix)

    def digest_salt(self) -> bytes:
        """A per-deployment secret used to pseudonymise request contents in the audit log."""
        with self.engine.connect() as conn:
            v = conn.execute(
                select(self.settings.c.value).where(self.settings.c.name == "digest_salt")
            ).scalar_one()
        return bytes.fromhex(v)

    # -- keys -----------------------------------------------------------------------------------
    def create_key(self, *, org: str, role: str, name: str = "",
                   expires_days: float | None = None, requested_by: str | None = None) -> NewKey:
        """A new key (its token is returned once; only its hash is stored). ``expires_days``:
        it stops working after that many days. ``requested_by``: the admin key asking for it
        through the API; an admin key so made waits for another admin's :meth:`approve_key`
        (the command line, run by the database's operator, makes working admin keys)."""
        if role not in ROLES:
            raise ConfigError(f"unknown role {role!r}; a key's role must be one of {list(ROLES)}")
        if not org or len(org) > 200:
            raise ConfigError(f"an organisation name of 1-200 characters is needed; got {org!r}")
        if expires_days is not None and not 0 < expires_days <= 3650:
            raise ConfigError(f"a key expires after 0-3650 days; got {expires_days!r}")
        key_id = secrets.token_hex(6)
        token = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        expires = None if expires_days is None else (
            datetime.now(UTC) + timedelta(days=expires_days)).isoformat(timespec="microseconds")
        with self.engine.begin() as conn:
            conn.execute(insert(self.keys).values(
                key_id=key_id, token_hash=hash_token(token), org=org, role=role, name=name,
                created=now_iso(), revoked=None, expires=expires,
                pending_by=requested_by if role == "admin" else None,
            ))
        return NewKey(key_id, token, org, role)

    def approve_key(self, key_id: str, approver: str) -> bool:
        """Approve an admin key waiting for a second admin; False when none waits. The admin who
        asked for it cannot approve it."""
        key = self.find_key(key_id)
        if key is None or key.pending_by is None or key.revoked is not None:
            return False
        if key.pending_by == approver:
            raise ConfigError("a second admin must approve an admin key; the admin who asked "
                              "for it cannot")
        with self.engine.begin() as conn:
            res = conn.execute(update(self.keys).where(
                self.keys.c.key_id == key_id, self.keys.c.pending_by == key.pending_by,
                self.keys.c.revoked.is_(None)).values(pending_by=None))
        return bool(res.rowcount)

    def rotate_key(self, key_id: str, grace_seconds: float = 0.0) -> NewKey | None:
        """A new token for an active key (same id, organisation, role and expiry); the old token
        keeps working for ``grace_seconds`` (0: it stops at once, within the servers' key cache
        time), so clients can switch without an outage. None when no such active key."""
        if not 0 <= grace_seconds <= 7 * 86400:
            raise ConfigError(f"a rotation's grace period is 0 to 604800 s; got {grace_seconds!r}")
        key = self.find_key(key_id)
        if key is None or key.revoked is not None:
            return None
        token = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        until = None if grace_seconds <= 0 else (
            datetime.now(UTC) + timedelta(seconds=grace_seconds)).isoformat(timespec="microseconds")
        with self.engine.begin() as conn:
            res = conn.execute(update(self.keys).where(
                self.keys.c.key_id == key_id, self.keys.c.revoked.is_(None),
                self.keys.c.token_hash == key.token_hash).values(
                token_hash=hash_token(token),
                prev_token_hash=key.token_hash if until else None, prev_until=until))
        return NewKey(key_id, token, key.org, key.role) if res.rowcount else None

    @staticmethod
    def _key(r: Any) -> ApiKey:
        return ApiKey(r.key_id, r.org, r.role, r.name, r.created, r.revoked, r.token_hash,
                      r.expires, r.pending_by, r.prev_token_hash, r.prev_until)

    def find_key(self, key_id: str) -> ApiKey | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(self.keys).where(self.keys.c.key_id == key_id)).first()
        return None if row is None else self._key(row)

    def list_keys(self, *, after: str = "", limit: int | None = None) -> list[ApiKey]:
        """Keys in id order after the id ``after`` (a page of ``limit``; all when None)."""
        q = select(self.keys).where(self.keys.c.key_id > after).order_by(self.keys.c.key_id)
        if limit is not None:
            q = q.limit(limit)
        with self.engine.connect() as conn:
            return [self._key(r) for r in conn.execute(q).all()]

    def active_keys(self) -> dict[str, frozenset[str]]:
        """Key id -> hashes of the tokens that work now (the current one, and a rotated-out one
        in its grace period); one query; servers refresh their key cache with it: a revoked,
        expired or rotated key drops out."""
        k = self.keys.c
        now = now_iso()
        with self.engine.connect() as conn:
            rows = conn.execute(select(k.key_id, k.token_hash, k.prev_token_hash,
                                       k.prev_until).where(
                k.revoked.is_(None), k.pending_by.is_(None),
                (k.expires.is_(None)) | (k.expires > now)))
            return {r.key_id: frozenset([r.token_hash] + (
                [r.prev_token_hash] if r.prev_token_hash and (r.prev_until or "") > now else []))
                for r in rows}

    def revoke_key(self, key_id: str) -> bool:
        """Revoke a key; False when there is no active key with that id."""
        with self.engine.begin() as conn:
            res = conn.execute(
                update(self.keys)
                .where(self.keys.c.key_id == key_id, self.keys.c.revoked.is_(None))
                .values(revoked=now_iso())
            )
        return bool(res.rowcount)

    def verify_token(self, token: str) -> ApiKey | None:
        """The active key whose token this is, else None (constant-time digest comparison)."""
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != KEY_PREFIX or len(parts[1]) != 12:
            return None
        key = self.find_key(parts[1])
        if key is None or not key.active:
            return None
        h = hash_token(token)
        if hmac.compare_digest(key.token_hash, h):
            return key
        if key.prev_token_hash is not None and (key.prev_until or "") > now_iso() and \
                hmac.compare_digest(key.prev_token_hash, h):
            return replace(key, token_hash=h)  # the old token, in its grace period
        return None

    def dispose(self) -> None:
        self.engine.dispose()

    def drop_all(self) -> None:
        """Drop this prefix's tables, the scan's included (tests and decommissioning)."""
        from finmlsec.store.db import drop_all

        drop_all(self.engine, prefix=self.prefix)


def gateway_tables(meta: MetaData, prefix: str = "") -> dict[str, Table]:
    """The gateway's tables (as the newest migration leaves them) in ``meta``."""
    p = prefix
    return {
        "keys": Table(
            f"{p}gw_api_keys", meta,
            Column("key_id", String(32), primary_key=True),
            Column("token_hash", String(64), nullable=False),
            Column("org", String(200), nullable=False),
            Column("role", String(40), nullable=False),
            Column("name", String(200), nullable=False, default=""),
            Column("created", String(40), nullable=False),
            Column("revoked", String(40), nullable=True),
            Column("expires", String(40), nullable=True),
            Column("pending_by", String(32), nullable=True),
            Column("prev_token_hash", String(64), nullable=True),  # a rotated key's old token
            Column("prev_until", String(40), nullable=True),  # ... works until then
        ),
        "audit": Table(
            f"{p}gw_audit", meta,
            Column("seq", Integer, primary_key=True, autoincrement=False),
            Column("body", Text, nullable=False),
            Column("hash", String(64), nullable=False),
        ),
        "head": Table(
            f"{p}gw_audit_head", meta,
            Column("id", Integer, primary_key=True, autoincrement=False),
            Column("seq", Integer, nullable=False),
            Column("hash", String(64), nullable=False),
        ),
        "feedback": Table(
            f"{p}gw_feedback", meta,
            Column("id", String(40), primary_key=True),
            Column("created", String(40), nullable=False),
            Column("key_id", String(32), nullable=False),
            Column("org", String(200), nullable=False),
            Column("record", Text, nullable=False),
            Column("label", String(200), nullable=False),
            Column("model_label", String(200), nullable=False),
            Column("model_confidence", String(40), nullable=False),
            Column("flags", Text, nullable=False),
            Column("status", String(20), nullable=False),
            Column("reviewed_by", String(200), nullable=True),
            Column("reviewed_at", String(40), nullable=True),
            Column("note", Text, nullable=True),
        ),
        "settings": Table(
            f"{p}gw_settings", meta,
            Column("name", String(40), primary_key=True),
            Column("value", Text, nullable=False),
        ),
    }


def _redact(url: str) -> str:
    """The URL without its password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
    return url
