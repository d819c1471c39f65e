"""The append-only, hash-chained audit log, written with group commit.

Entry ``n`` is stored as its canonical JSON ``body`` (sorted keys, no spaces; it includes ``seq``)
and ``hash_n = SHA-256(bytes(hash_{n-1}) || body_n)``, starting from 64 zeros. A head row holds the
last ``(seq, hash)``. Editing an entry breaks its hash; deleting or reordering entries breaks the
sequence or the chain; dropping the newest entries disagrees with the head. Operators may copy the
head hash elsewhere (``finmlsec audit verify`` prints it) to detect a rewrite of the whole chain.

The :class:`AuditWriter` thread takes queued entries (and the feedback rows they acknowledge), and
writes as many as are waiting (lingering up to ``linger`` seconds for more when several are and
commits are faster than that) in one transaction: the chain head is locked, the entries chained and
inserted, the transaction committed, and only then are the waiting requests released. A request is
acknowledged only after its entry (and its feedback) is durable.

No secrets and no raw records: callers pass key ids, organisations, counts and keyed digests.

Example:
    >>> from finmlsec.store.gateway import GatewayDB
    >>> db = GatewayDB("sqlite://")
    >>> w = AuditWriter(db)
    >>> w.append_sync({"action": "keys.create", "actor": "cli"})
    1
    >>> w.append_sync({"action": "keys.revoke", "actor": "cli"})
    2
    >>> verify_chain(db).ok
    True
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import queue
import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from finmlsec.errors import AuditError, StoreError
from finmlsec.store.gateway import GENESIS, GatewayDB, now_iso


def canonical(entry: dict[str, Any]) -> str:
    """The canonical JSON serialisation that is hashed (sorted keys, compact, ASCII)."""
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False, default=str)


def chain(prev_hash: str, body: str) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + body.encode("ascii")).hexdigest()


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

    def __init__(self, db: GatewayDB, *, batch_max: int = 1024, linger: float = 0.0) -> None:
        self.db = db
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
        return job.future.result()

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
            job = self._queue.get()
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
            prev = chain(prev, body)
            rows.append({"seq": seq, "body": body, "hash": prev})
            seqs.append(seq)
            if job.feedback is not None:
                fb_rows.append(job.feedback)
        if fb_rows:
            conn.execute(ins_feedback, fb_rows)
        conn.execute(ins_audit, rows)
        conn.execute(set_head, {"new_seq": seq, "new_hash": prev})
        return seqs

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread."""
        if self._thread is not None and self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :func:`verify_chain`: ``ok``, entries checked, head hash, first problem."""

    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    problem: str | None = None
    bad_seq: int | None = None

    def raise_for_problem(self) -> None:
        if not self.ok:
            raise AuditError(f"audit chain broken: {self.problem}")


def _rows(db: GatewayDB, chunk: int = 5000) -> Iterable[Any]:
    last = -1
    while True:
        with db.engine.connect() as conn:
            rows = conn.execute(
                select(db.audit.c.seq, db.audit.c.body, db.audit.c.hash)
                .where(db.audit.c.seq > last).order_by(db.audit.c.seq).limit(chunk)
            ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def verify_chain(db: GatewayDB) -> VerifyResult:
    """Recompute the chain; report the first edited, missing, inserted or reordered entry."""
    with db.engine.connect() as conn:
        head_seq, head_hash = conn.execute(
            select(db.head.c.seq, db.head.c.hash).where(db.head.c.id == 1)
        ).one()
    prev, expected, n = GENESIS, 1, 0

    def bad(msg: str, seq: int | None) -> VerifyResult:
        return VerifyResult(False, n, head_seq, head_hash, msg, seq)

    for row in _rows(db):
        if row.seq != expected:
            return bad(f"entry {expected} is missing (next stored entry is {row.seq})", expected)
        try:
            body_seq = json.loads(row.body).get("seq")
        except (ValueError, AttributeError):
            return bad(f"entry {row.seq} is not valid JSON", row.seq)
        if body_seq != row.seq:
            return bad(f"entry stored at position {row.seq} says it is entry {body_seq} "
                       "(entries were moved or reordered)", row.seq)
        h = chain(prev, row.body)
        if h != row.hash:
            return bad(f"entry {row.seq} was edited or reordered (its hash does not match the "
                       "chain)", row.seq)
        prev, expected, n = h, expected + 1, n + 1
    if n != head_seq:
        return bad(f"the head says {head_seq} entries but {n} are stored (entries were deleted "
                   "from the end, or the head was altered)", n + 1)
    if prev != head_hash:
        return bad("the head hash does not match the last entry", head_seq)
    return VerifyResult(True, n, head_seq, head_hash)


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
