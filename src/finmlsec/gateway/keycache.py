"""Who is calling: API key -> :class:`Principal`, through a bounded cache of verified keys.

A verified key stays cached; every ``ttl`` seconds one query of the active keys evicts the
revoked, expired, rotated and deleted ones (rather than one lookup per key and period), so a key revoked elsewhere
(the CLI, another server) is refused within ``ttl``. An unknown token is remembered as unknown for
``ttl`` (a flood of one bad token costs one lookup per period). The cache holds at most
``max_entries`` tokens and evicts the least recently used one beyond that (never all at once).
``ttl`` 0 disables caching. Database work happens in :meth:`KeyCache.lookup`, which the server
runs in a worker thread; :meth:`KeyCache.cached` answers from memory only.

Example:
    >>> from finmlsec.store.gateway import GatewayDB
    >>> db = GatewayDB("sqlite://")
    >>> k = db.create_key(org="bank", role="admin")
    >>> cache = KeyCache(db, ttl=60, max_entries=2)
    >>> cache.cached(k.token) is MISS
    True
    >>> cache.lookup(k.token).org, cache.cached(k.token).role
    ('bank', 'admin')
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from sqlalchemy.exc import SQLAlchemyError

from finmlsec.errors import StoreError
from finmlsec.store.gateway import ApiKey, GatewayDB


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: key id, organisation, role (never the key itself)."""

    key_id: str
    org: str
    role: str


class Miss:
    """The type of :data:`MISS`."""

    def __repr__(self) -> str:
        return "MISS"


MISS: Final = Miss()
"""What :meth:`KeyCache.cached` returns when only the database can answer."""


class KeyCache:
    """API key verification with a bounded LRU cache (see the module docstring)."""

    def __init__(self, db: GatewayDB, *, ttl: float, max_entries: int = 10_000) -> None:
        self.db = db
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, tuple[float, ApiKey | None, Principal | None]] = (
            OrderedDict())
        self._checked = time.monotonic()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def cached(self, token: str) -> Principal | None | Miss:
        """The principal (or None for a known-bad token) from memory, or :data:`MISS` when the
        database must answer (not cached, expired, or the period's refresh is due)."""
        if self.ttl <= 0:
            return MISS
        now = time.monotonic()
        if now >= self._checked + self.ttl:
            return MISS
        digest = hashlib.sha256(token.encode("utf-8", "replace")).digest()
        with self._lock:
            hit = self._entries.get(digest)
            if hit is None or (hit[1] is None and hit[0] <= now):
                return MISS
            self._entries.move_to_end(digest)
        return hit[2]

    def known(self, token: str) -> bool:
        """Whether ``token`` is a key this cache verified (even if its refresh is due)."""
        digest = hashlib.sha256(token.encode("utf-8", "replace")).digest()
        hit = self._entries.get(digest)
        return hit is not None and hit[1] is not None

    def lookup(self, token: str) -> Principal | None:
        """The principal of ``token`` or None, asking the database when needed (blocking: the
        server calls it in a worker thread)."""
        hit = self.cached(token)
        if not isinstance(hit, Miss):
            return hit
        now = time.monotonic()
        try:
            if self.ttl > 0 and now >= self._checked + self.ttl:
                self._refresh(now)
                hit = self.cached(token)
                if not isinstance(hit, Miss):
                    return hit
            key = self.db.verify_token(token)
        except SQLAlchemyError as exc:
            raise StoreError(f"the key store is unavailable: {type(exc).__name__}") from None
        p = None if key is None else Principal(key.key_id, key.org, key.role)
        if self.ttl > 0:
            digest = hashlib.sha256(token.encode("utf-8", "replace")).digest()
            with self._lock:
                self._entries[digest] = (now + self.ttl, key, p)
                self._entries.move_to_end(digest)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        return p

    def _refresh(self, now: float) -> None:
        active = self.db.active_keys()
        with self._lock:
            for d in [d for d, v in self._entries.items()
                      if (v[1].token_hash not in active.get(v[1].key_id, ()) if v[1] is not None
                          else v[0] <= now)]:
                del self._entries[d]
            self._checked = now

    def forget_refusals(self) -> None:
        """Drop every cached refusal now (a key of this process became valid: an approval)."""
        with self._lock:
            for d in [d for d, v in self._entries.items() if v[1] is None]:
                del self._entries[d]

    def forget(self, key_id: str) -> None:
        """Drop a key's entries now (it was revoked by this process)."""
        with self._lock:
            for d in [d for d, v in self._entries.items()
                      if v[1] is not None and v[1].key_id == key_id]:
                del self._entries[d]
