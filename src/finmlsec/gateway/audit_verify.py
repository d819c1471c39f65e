"""Verification of the audit log: the chain (keyed), its anchors outside the database, and the
tables the chain vouches for (API keys, feedback reports and their review decisions).

:func:`verify_chain` recomputes the chain and reports the first edited, missing, inserted or
reordered entry. :func:`verify_log` adds the anchor files (a head that was anchored must still be
in the chain, and the stored head may not be older than the newest anchor: truncation) and the
tables: every API key row must equal the last snapshot of it in the chain (a key inserted, its
role changed or its revocation undone in the database is reported), and every feedback report
must match the digest its submission entry recorded and have the status its last review entry
gave (a forged approval is reported; :func:`chain_bindings` lets an export drop it).

Example:
    >>> from finmlsec.gateway.audit import AuditWriter
    >>> from finmlsec.store.gateway import GatewayDB
    >>> db = GatewayDB("sqlite://"); w = AuditWriter(db, key=bytes(32))
    >>> _ = w.append_sync({"action": "predict", "status": 200})
    >>> verify_log(db, key=bytes(32)).ok
    True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from finmlsec.errors import AuditError
from finmlsec.gateway.audit import canonical, chain
from finmlsec.gateway.auditkey import default_key_path, load_key, read_anchors
from finmlsec.store.gateway import GENESIS, ApiKey, GatewayDB


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :func:`verify_chain` / :func:`verify_log`: ``ok``, entries checked, head hash,
    first problem (and, for the tables, every problem found)."""

    ok: bool
    entries: int
    head_seq: int
    head_hash: str
    problem: str | None = None
    bad_seq: int | None = None
    keyed: bool = False
    anchors: int = 0
    problems: list[str] = field(default_factory=list)

    def raise_for_problem(self) -> None:
        if not self.ok:
            raise AuditError(f"audit log: {self.problem}")


# -- snapshots the chain records --------------------------------------------------------------------
def key_snapshot(k: ApiKey) -> dict[str, Any]:
    """What the chain records of an API key row after each change (never the key)."""
    snap: dict[str, Any] = {"key_id": k.key_id, "org": k.org, "role": k.role,
                            "token_hash": k.token_hash, "revoked": k.revoked is not None}
    if k.prev_token_hash is not None:  # a rotated-out token in (or past) its grace period
        snap["prev_token_hash"], snap["prev_until"] = k.prev_token_hash, k.prev_until
    return snap


def key_state(db: GatewayDB, key_id: str) -> dict[str, Any] | None:
    """:func:`key_snapshot` of the stored key ``key_id`` (for the entry that records a change)."""
    k = db.find_key(key_id)
    return None if k is None else key_snapshot(k)


def feedback_digest(row: dict[str, Any]) -> str:
    """Digest of what a reporter sent and the model answered (fixed once the report is made)."""
    fixed = {n: row[n] for n in ("id", "created", "key_id", "org", "record", "label",
                                 "model_label", "model_confidence", "flags")}
    return hashlib.sha256(canonical(fixed).encode("ascii")).hexdigest()


@dataclass
class Bindings:
    """What the chain says the tables hold: key snapshots, feedback digests and statuses."""

    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    feedback: dict[str, str] = field(default_factory=dict)  # id -> digest
    status: dict[str, str] = field(default_factory=dict)  # id -> status by the last review

    def add(self, entry: dict[str, Any]) -> None:
        d = entry.get("detail")
        if not isinstance(d, dict):
            return
        if isinstance(d.get("key"), dict) and "key_id" in d["key"]:
            self.keys[str(d["key"]["key_id"])] = d["key"]
        fid = d.get("feedback_id")
        if fid is None:
            return
        action = entry.get("action")
        if action == "feedback" and entry.get("status") == 202 and "row" in d:
            self.feedback[str(fid)] = str(d["row"])
            self.status[str(fid)] = "quarantined"
        elif action in ("feedback.approve", "feedback.reject") and entry.get("status") == 200:
            self.status[str(fid)] = "approved" if action == "feedback.approve" else "rejected"

    def feedback_ok(self, row: Any) -> str | None:
        """None when the report ``row`` is as the chain recorded it, else what differs."""
        fid = str(row.id)
        if fid not in self.feedback:
            return f"feedback {fid} has no submission entry in the audit log"
        if feedback_digest(row._asdict()) != self.feedback[fid]:
            return f"feedback {fid} differs from what its submission entry recorded"
        if row.status != self.status[fid]:
            return (f"feedback {fid} is {row.status!r} in the database but "
                    f"{self.status[fid]!r} in the audit log (a decision not made through the "
                    "gateway)")
        return None


# -- the chain ----------------------------------------------------------------------------------------
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


def _walk(db: GatewayDB, key: bytes | None,
          bindings: Bindings | None) -> tuple[VerifyResult, dict[int, str]]:
    with db.engine.connect() as conn:
        head_seq, head_hash = conn.execute(
            select(db.head.c.seq, db.head.c.hash).where(db.head.c.id == 1)
        ).one()
    prev, expected, n = GENESIS, 1, 0
    hashes: dict[int, str] = {}

    def bad(msg: str, seq: int | None) -> tuple[VerifyResult, dict[int, str]]:
        return VerifyResult(False, n, head_seq, head_hash, msg, seq, key is not None), hashes

    for row in _rows(db):
        if row.seq != expected:
            return bad(f"entry {expected} is missing (next stored entry is {row.seq})", expected)
        try:
            entry = json.loads(row.body)
            body_seq = entry.get("seq")
        except (ValueError, AttributeError):
            return bad(f"entry {row.seq} is not valid JSON", row.seq)
        if body_seq != row.seq:
            return bad(f"entry stored at position {row.seq} says it is entry {body_seq} "
                       "(entries were moved or reordered)", row.seq)
        h = chain(prev, row.body, key)
        if h != row.hash:
            why = ("" if key is not None else
                   "; if the log is authenticated with a key, give it: --audit-key-file")
            return bad(f"entry {row.seq} was edited, reordered or written without the audit key "
                       f"(its hash does not match the chain{why})", row.seq)
        if bindings is not None:
            bindings.add(entry)
        hashes[row.seq] = h
        prev, expected, n = h, expected + 1, n + 1
    if n != head_seq:
        return bad(f"the head says {head_seq} entries but {n} are stored (entries were deleted "
                   "from the end, or the head was altered)", n + 1)
    if prev != head_hash:
        return bad("the head hash does not match the last entry", head_seq)
    return VerifyResult(True, n, head_seq, head_hash, keyed=key is not None), hashes


AUTO = "auto"
"""As a key: the one configured for the database (see :func:`finmlsec.gateway.auditkey.load_key`)."""


def _key(db: GatewayDB, key: bytes | str | None) -> bytes | None:
    if key == AUTO:
        return load_key(None, default=default_key_path(db.url))
    assert not isinstance(key, str)
    return key


def verify_chain(db: GatewayDB, key: bytes | str | None = AUTO) -> VerifyResult:
    """Recompute the chain under ``key`` (by default the one configured for ``db``; None: plain
    SHA-256); the first problem found."""
    return _walk(db, _key(db, key), None)[0]


def _check_anchors(res: VerifyResult, hashes: dict[int, str], key: bytes | None,
                   anchors: Sequence[str | Path]) -> tuple[str | None, int | None, int]:
    count = 0
    for path in anchors:
        for a in read_anchors(path, key):
            count += 1
            if not a.ok:
                return (f"anchor {a.where} is not authenticated with the audit key (edited, "
                        "or written with another key)"), None, count
            if a.seq > res.head_seq:
                return (f"entry {a.seq} was anchored at {a.ts} ({a.where}) but the log ends at "
                        f"entry {res.head_seq}: entries were deleted from the end"), a.seq, count
            if a.seq > 0 and hashes.get(a.seq) != a.hash:
                return (f"entry {a.seq} differs from its anchor of {a.ts} ({a.where}): the chain "
                        "was rewritten"), a.seq, count
    return None, None, count


def _check_tables(db: GatewayDB, b: Bindings) -> list[str]:
    problems = []
    for k in db.list_keys():
        snap = b.keys.get(k.key_id)
        if snap is None:
            problems.append(f"API key {k.key_id} is not in the audit log (added to the database "
                            "directly?)")
        elif snap != key_snapshot(k):
            changed = sorted(n for n, v in key_snapshot(k).items() if snap.get(n) != v)
            problems.append(f"API key {k.key_id} differs from its last audited state "
                            f"({', '.join(changed)})")
    with db.engine.connect() as conn:
        for row in conn.execute(select(db.feedback)):
            why = b.feedback_ok(row)
            if why is not None:
                problems.append(why)
    return problems


def verify_log(db: GatewayDB, key: bytes | str | None = AUTO,
               anchors: Sequence[str | Path] = (), tables: bool = True) -> VerifyResult:
    """The chain (``key`` as for :func:`verify_chain`), its ``anchors`` and (``tables``) the key
    and feedback tables."""
    key = _key(db, key)
    b = Bindings()
    res, hashes = _walk(db, key, b)
    if not res.ok:
        return res
    problem, seq, count = _check_anchors(res, hashes, key, anchors)
    problems = [problem] if problem else []
    if tables:
        problems += _check_tables(db, b)
    if problems:
        return VerifyResult(False, res.entries, res.head_seq, res.head_hash, problems[0],
                            seq, key is not None, count, problems)
    return VerifyResult(True, res.entries, res.head_seq, res.head_hash, keyed=key is not None,
                        anchors=count)


def chain_bindings(db: GatewayDB, key: bytes | str | None = AUTO,
                   anchors: Sequence[str | Path] = ()) -> Bindings:
    """What a verified chain says the tables hold; AuditError when the chain or an anchor fails."""
    key = _key(db, key)
    b = Bindings()
    res, hashes = _walk(db, key, b)
    res.raise_for_problem()
    problem = _check_anchors(res, hashes, key, anchors)[0]
    if problem:
        raise AuditError(f"audit log: {problem}")
    return b
