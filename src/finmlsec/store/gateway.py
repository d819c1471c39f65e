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
from dataclasses import dataclass
from datetime import UTC, datetime
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

ROLES = ("system_user", "admin")
"""``system_user`` predicts (and reports false predictions if its organisation may); ``admin``
reads the audit log, manages keys and reviews the feedback quarantine."""

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

    @property
    def active(self) -> bool:
        return self.revoked is None


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
    def create_key(self, *, org: str, role: str, name: str = "") -> NewKey:
        if role not in ROLES:
            raise ConfigError(f"unknown role {role!r}; a key's role must be one of {list(ROLES)}")
        if not org or len(org) > 200:
            raise ConfigError(f"an organisation name of 1-200 characters is needed; got {org!r}")
        key_id = secrets.token_hex(6)
        token = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
        with self.engine.begin() as conn:
            conn.execute(insert(self.keys).values(
                key_id=key_id, token_hash=hash_token(token), org=org, role=role, name=name,
                created=now_iso(), revoked=None,
            ))
        return NewKey(key_id, token, org, role)

    def find_key(self, key_id: str) -> ApiKey | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(self.keys).where(self.keys.c.key_id == key_id)).first()
        return None if row is None else ApiKey(
            row.key_id, row.org, row.role, row.name, row.created, row.revoked, row.token_hash
        )

    def list_keys(self) -> list[ApiKey]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(self.keys).order_by(self.keys.c.created)).all()
        return [ApiKey(r.key_id, r.org, r.role, r.name, r.created, r.revoked, r.token_hash)
                for r in rows]

    def active_key_ids(self) -> set[str]:
        """Ids of the keys not revoked (one query; servers refresh their key cache with it)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(self.keys.c.key_id).where(self.keys.c.revoked.is_(None)))
            return {r.key_id for r in rows}

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
        if not hmac.compare_digest(key.token_hash, hash_token(token)):
            return None
        return key

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
