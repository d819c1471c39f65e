"""The append-only, hash-chained audit log, written with group commit.

Entry ``n`` is stored as its canonical JSON ``body`` (sorted keys, no spaces; it includes ``seq``)
and ``hash_n = HMAC-SHA256(key, bytes(hash_{n-1}) || body_n)``, starting from 64 zeros, with a key
kept outside the database (:mod:`finmlsec.gateway.auditkey`); without a key, plain
``SHA-256(bytes(hash_{n-1}) || body_n)``, which only detects accidents: whoever can write the
database can recompute it. A head row holds the last ``(seq, hash)``, and the writer anchors it
outside the database at intervals (an append-only file), so truncation and wholesale rewrites are
detected too. :mod:`finmlsec.gateway.audit_verify` checks all of it.

The :class:`AuditWriter` thread takes queued entries (and the feedback rows they acknowledge), and
writes as many as are waiting (lingering up to ``linger`` seconds for more when several are and
commits are faster than that) in one transaction: the chain head is locked, the entries chained and
inserted, the transaction committed, and only then are the waiting requests released. A request is
acknowledged only after its entry (and its feedback) is durable.

No secrets and no raw records: callers pass key ids, organisations, counts and keyed digests.

Example:
    >>> from finmlsec.store.gateway import GatewayDB
    >>> from finmlsec.gateway.audit_verify import verify_chain
    >>> db = GatewayDB("sqlite://")
    >>> w = AuditWriter(db, key=bytes(32))
    >>> w.append_sync({"action": "keys.create", "actor": "cli"})
    1
    >>> w.append_sync({"action": "keys.revoke", "actor": "cli"})
    2
    >>> verify_chain(db, key=bytes(32)).ok, verify_chain(db).ok
    (True, False)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from finmlsec.errors import AuditError, StoreError
from finmlsec.gateway.auditkey import Anchor, fingerprint
from finmlsec.store.gateway import GENESIS, GatewayDB, now_iso


def canonical(entry: dict[str, Any]) -> str:
    """The canonical JSON serialisation that is hashed (sorted keys, compact, ASCII)."""
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False, default=str)


def chain(prev_hash: str, body: str, key: bytes | None = None) -> str:
    """The link after ``prev_hash``: HMAC-SHA256 under ``key``, else SHA-256."""
    data = bytes.fromhex(prev_hash) + body.encode("ascii")
    if key is None:
        return hashlib.sha256(data).hexdigest()
    return hmac.new(key, data, hashlib.sha256).hexdigest()


class _Job:
    """One queued entry; settled through ``aio`` (an asyncio future, by submit_async) or else
    ``future`` (a concurrent future, created only then: it costs a lock and a condition)."""

    __slots__ = ("aio", "entry", "feedback", "future")

    def __init__(self, entry: dict[str, Any], feedback: dict[str, Any] | None,
                 aio: asyncio.Future[int] | None = None) -> None:
        self.entry = entry
        self.feedback = feedback
        self.aio = aio
        self.future: Future[int] | None = None if aio is not None else Future()


def _settle(items: list[tuple[asyncio.Future[int], int | None]], exc: Exception | None) -> None:
    for fut, seq in items:
        if fut.done():
            continue
        if exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(seq)  # type: ignore[arg-type]


class AuditWriter:
    """Group-committing writer of audit entries (and the feedback rows they acknowledge)."""

    def __init__(self, db: GatewayDB, *, batch_max: int = 1024, linger: float = 0.0,
                 key: bytes | None = None, anchor: Anchor | None = None,
                 anchor_seconds: float = 1.0) -> None:
        self.db = db
        self.key = key
        self.anchor = anchor
        self.anchor_seconds = anchor_seconds
        self._anchored_at = 0.0
        self._head: tuple[int, str] | None = None  # the latest committed (seq, hash)
        self._pending: tuple[int, str] | None = None
        self._anchor_lock = threading.Lock()
        self.batch_max = batch_max
        self.linger = linger
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.commits = 0
        self.entries = 0
        self._conn: Any = None  # the writer thread's connection
        self._stmts: tuple[Any, Any, Any, Any] | None = None
        self._last_write = 0.0  # seconds the latest group commit took

    # -- submission -----------------------------------------------------------------------------
    def submit(self, entry: dict[str, Any], feedback: dict[str, Any] | None = None) -> Future[int]:
        """Queue an entry; the future gives its sequence number once committed."""
        self._ensure_thread()
        job = _Job(dict(entry), feedback)
        self._queue.put(job)
        assert job.future is not None
        return job.future

    def submit_async(self, entry: dict[str, Any],
                     feedback: dict[str, Any] | None = None) -> asyncio.Future[int]:
        """:meth:`submit` for a coroutine: an asyncio future of the running loop. All the
        entries of one commit are settled by a single wake-up of their loop (rather than one
        thread-safe call per entry)."""
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._ensure_thread()
        self._queue.put(_Job(dict(entry), feedback, aio=fut))
        return fut

    def append_sync(self, entry: dict[str, Any], feedback: dict[str, Any] | None = None) -> int:
        """Write one entry now, in the calling thread (CLI, admin actions)."""
        job = _Job(dict(entry), feedback)
        self._write([job])
        assert job.future is not None
        seq = job.future.result()
        self.anchor_head(force=True)
        return seq

    def append_with(self, change: Any, entry: dict[str, Any]) -> int | None:
        """Run ``change(conn)`` and chain ``entry`` in one transaction, so the change to a table
        (a review decision, say) and its audit entry are committed together or not at all.
        ``change`` returns False to write nothing (then None is returned)."""
        with self.db.engine.begin() as conn:
            if not change(conn):
                return None
            seq = self._insert(conn, [_Job(dict(entry), None)])[0]
        self._head = self._pending
        self.anchor_head(force=True)
        return seq

    def anchor_head(self, force: bool = False) -> None:
        """Append the latest committed head to the anchor file when one is due (or ``force``)."""
        if self.anchor is None or self._head is None:
            return
        now = time.monotonic()
        if not force and now - self._anchored_at < self.anchor_seconds:
            return
        seq, head = self._head
        try:
            with self._anchor_lock:
                self.anchor.append(seq, head)
        except OSError as exc:
            # never silently: an anchor that cannot be written leaves truncation undetectable
            logging.getLogger("finmlsec.gateway").error(
                "the audit anchor %s could not be written: %s", self.anchor.path, exc)
            return
        self._anchored_at = now

    # -- the writer thread ----------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(
                        target=self._run, name="finmlsec-audit", daemon=True
                    )
                    self._thread.start()

    def _run(self) -> None:
        try:
            self._serve()
        finally:
            self._drop_connection()

    def _drop_connection(self, broken: bool = False) -> None:
        """Close the writer's connection; ``broken``: discard it rather than pool it."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                if broken:
                    conn.invalidate()
                conn.close()

    def _serve(self) -> None:
        while True:
            due = self.anchor is not None and self._head is not None and (
                self._head[0] > self.anchor.last_seq)
            try:  # when idle with an unanchored head, anchor it once the interval has passed
                job = self._queue.get(timeout=self.anchor_seconds if due else None)
            except queue.Empty:
                self.anchor_head()
                continue
            if job is None:
                return
            batch = [job]
            stop = False
            deadline = time.monotonic() + self.linger
            lingered = False
            while len(batch) < self.batch_max:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    # Under load (more than one entry waiting), linger a moment for more: fewer,
                    # larger commits (fewer fsyncs); a lone entry is committed at once. One
                    # sleep, then take what came: waiting on the queue instead would wake this
                    # thread (and take the GIL from the event loop) once per entry.
                    # When a commit itself takes longer than the linger (a slow fsync), entries
                    # gather during the commit anyway: lingering would only add latency.
                    wait = deadline - time.monotonic()
                    if lingered or wait <= 0 or len(batch) < 2 or self._last_write > self.linger:
                        break
                    time.sleep(wait)
                    lingered = True
                    continue
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            started = time.monotonic()
            self._write(batch, own=True)
            self._last_write = time.monotonic() - started
            self.anchor_head(force=stop)
            if stop:
                return

    def _write(self, batch: list[_Job], own: bool = False) -> None:
        for attempt in range(20):
            try:
                seqs = self._write_once(batch, own)
            except OperationalError as exc:  # SQLite busy beyond its timeout, PG serialisation
                if own:  # start again on a fresh connection
                    self._drop_connection(broken=True)
                if attempt == 19:
                    self._fail(batch, exc)
                    return
                time.sleep(0.01 * (attempt + 1))
                continue
            except (SQLAlchemyError, ValueError) as exc:
                if own:
                    self._drop_connection(broken=True)
                self._fail(batch, exc)
                return
            self._head = self._pending
            self._done(batch, seqs, None)
            self.commits += 1
            self.entries += len(batch)
            return

    @staticmethod
    def _done(batch: list[_Job], seqs: list[int] | None, exc: Exception | None) -> None:
        loops: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[int], int | None]]] = {}
        for i, job in enumerate(batch):
            seq = None if seqs is None else seqs[i]
            if job.aio is not None:
                loops.setdefault(job.aio.get_loop(), []).append((job.aio, seq))
            elif job.future is not None and not job.future.done():
                if exc is not None:
                    job.future.set_exception(exc)
                else:
                    job.future.set_result(seq)  # type: ignore[arg-type]
        for loop, items in loops.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_settle, items, exc)

    @classmethod
    def _fail(cls, batch: list[_Job], exc: Exception) -> None:
        # the driver's message only: SQLAlchemy's would quote the statement and the entries
        why = getattr(exc, "orig", None) or exc
        cls._done(batch, None, StoreError(f"the audit log could not be written: "
                                          f"{type(why).__name__}: {why}"))

    def _write_once(self, batch: list[_Job], own: bool = False) -> list[int]:
        """Chain and insert ``batch`` in one transaction. ``own``: the writer thread's call,
        on the connection it keeps open between commits (checking a pooled connection out and
        back in, with its reset, cost more than the inserts), except on a single shared
        in-memory connection."""
        db = self.db
        if own and not isinstance(db.engine.pool, StaticPool):
            if self._conn is None:
                self._conn = db.engine.connect()
            with self._conn.begin():
                return self._insert(self._conn, batch)
        with db.engine.begin() as conn:
            return self._insert(conn, batch)

    def _statements(self) -> tuple[Any, Any, Any, Any]:
        """The four statements of a commit, built once (building them costs more than
        running them on a small group)."""
        if self._stmts is None:
            db = self.db
            q = select(db.head.c.seq, db.head.c.hash).where(db.head.c.id == 1)
            if not db.is_sqlite:
                q = q.with_for_update()
            self._stmts = (q, insert(db.feedback), insert(db.audit),
                           update(db.head).where(db.head.c.id == 1).values(
                               seq=bindparam("new_seq"), hash=bindparam("new_hash")))
        return self._stmts

    def _insert(self, conn: Any, batch: list[_Job]) -> list[int]:
        head, ins_feedback, ins_audit, set_head = self._statements()
        seq, prev = conn.execute(head).one()
        rows, fb_rows, seqs = [], [], []
        for job in batch:
            seq += 1
            entry = {**job.entry, "seq": seq}
            entry.setdefault("ts", now_iso())
            body = canonical(entry)
            prev = chain(prev, body, self.key)
            rows.append({"seq": seq, "body": body, "hash": prev})
            seqs.append(seq)
            if job.feedback is not None:
                fb_rows.append(job.feedback)
        if fb_rows:
            conn.execute(ins_feedback, fb_rows)
        conn.execute(ins_audit, rows)
        conn.execute(set_head, {"new_seq": seq, "new_hash": prev})
        self._pending = (seq, prev)  # the head once this transaction commits
        return seqs

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)
        self.anchor_head(force=True)
        if self.anchor is not None:
            with self._anchor_lock:
                self.anchor.close()


def read_entries(db: GatewayDB, *, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
    """Entries with ``seq > after``, oldest first, as dicts (with their hash)."""
    try:
        with db.engine.connect() as conn:
            rows = conn.execute(
                select(db.audit.c.seq, db.audit.c.body, db.audit.c.hash)
                .where(db.audit.c.seq > after).order_by(db.audit.c.seq).limit(limit)
            ).all()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the audit log: {exc}") from None
    return [{**json.loads(r.body), "hash": r.hash} for r in rows]


def open_writer(db: GatewayDB, *, key_file: str | None = None, anchor: str | None = None,
                anchor_seconds: float = 1.0, batch_max: int = 1024, linger: float = 0.0,
                create_key: bool = True) -> AuditWriter:
    """The writer of ``db``'s log with its key and anchor file resolved as
    :mod:`finmlsec.gateway.auditkey` describes (``create_key``: make the default key file of a
    SQLite database when no key is given, as a server does); refuses a log whose newest entry does
    not verify with that key."""
    import os

    from finmlsec.gateway.auditkey import (
        ANCHOR_ENV,
        default_anchor_path,
        default_key_path,
        load_key,
    )

    key = load_key(key_file, default=default_key_path(db.url), create=create_key)
    check_tail(db, key)
    path = anchor or os.environ.get(ANCHOR_ENV) or default_anchor_path(db.url)
    return AuditWriter(db, batch_max=batch_max, linger=linger, key=key,
                       anchor=None if path is None else Anchor(path, key),
                       anchor_seconds=anchor_seconds)


def anchor_paths(db_url: str, anchors: list[str] | None) -> list[str]:
    """The anchor files to verify: those given, else ``$FINMLSEC_AUDIT_ANCHOR``, else the SQLite
    default when it exists."""
    import os

    from finmlsec.gateway.auditkey import ANCHOR_ENV, default_anchor_path

    if anchors:
        return list(anchors)
    if os.environ.get(ANCHOR_ENV):
        return [os.environ[ANCHOR_ENV]]
    p = default_anchor_path(db_url)
    return [str(p)] if p is not None and p.exists() else []


def check_tail(db: GatewayDB, key: bytes | None) -> None:
    """At start-up: the newest entry must be linked under ``key`` (a different key, a log written
    without one, or a rewritten tail is refused before anything is appended to it)."""
    with db.engine.connect() as conn:
        rows = conn.execute(select(db.audit.c.seq, db.audit.c.body, db.audit.c.hash)
                            .order_by(db.audit.c.seq.desc()).limit(2)).all()
    if not rows:
        return
    last = rows[0]
    prev = rows[1].hash if len(rows) > 1 else GENESIS
    if chain(prev, last.body, key) != last.hash:
        what = f"the key {fingerprint(key)}" if key is not None else "no key"
        raise AuditError(
            f"the newest audit entry ({last.seq}) does not verify with {what}: the log was "
            "written with another key (or without one), or it was altered; run 'finmlsec audit "
            "verify' with the key it was written with, or start a new log (--table-prefix)")
