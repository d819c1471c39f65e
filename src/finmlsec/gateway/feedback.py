"""The feedback quarantine: false-prediction reports (flow G) wait here until an operator approves
or rejects them; only approved reports may reach training data (``finmlsec feedback list --status
approved --format json`` exports them).

Screening flags a report (it is quarantined either way) when the model contradicts it with high
confidence, or when the input screen finds the record out of distribution: the feedback-loop
poisoning of the paper's section III pushes many such reports.

Example:
    >>> from finmlsec.store.gateway import GatewayDB
    >>> from finmlsec.gateway.audit import AuditWriter
    >>> db = GatewayDB("sqlite://"); w = AuditWriter(db)
    >>> row = feedback_row(key_id="k1", org="bank", record={"age": 30}, label="good",
    ...                    model_label="bad", model_confidence=0.97, flags=["contradicts_model"])
    >>> _ = w.append_sync(submission_entry(row), feedback=row)
    >>> [f.status for f in list_feedback(db)]
    ['quarantined']
    >>> review(db, w, row["id"], "approve", reviewer="cli:ops").status
    'approved'
    >>> [f.id for f in list_feedback(db, status="approved", verified=(None, []))] == [row["id"]]
    True

A report whose status was changed in the database rather than through :func:`review` (a forged
approval), or whose contents were altered, fails ``finmlsec audit verify`` and is left out of
``list_feedback(..., verified=...)`` (what the export uses).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from finmlsec.errors import ConfigError
from finmlsec.gateway.audit import AuditWriter
from finmlsec.gateway.audit_verify import chain_bindings, feedback_digest
from finmlsec.store.gateway import GatewayDB, now_iso

STATUSES = ("quarantined", "approved", "rejected")


@dataclass(frozen=True)
class FeedbackItem:
    id: str
    created: str
    key_id: str
    org: str
    record: dict[str, Any]
    label: str
    model_label: str
    model_confidence: float
    flags: list[str]
    status: str
    reviewed_by: str | None
    reviewed_at: str | None
    note: str | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def feedback_row(*, key_id: str, org: str, record: dict[str, Any], label: str, model_label: str,
                 model_confidence: float, flags: list[str], note: str | None = None) -> dict[str, Any]:
    """A new quarantined feedback row (to be written together with its audit entry)."""
    return {
        "id": uuid.uuid4().hex, "created": now_iso(), "key_id": key_id, "org": org,
        "record": json.dumps(record, sort_keys=True), "label": label, "model_label": model_label,
        "model_confidence": f"{model_confidence:.6f}", "flags": json.dumps(flags),
        "status": "quarantined", "reviewed_by": None, "reviewed_at": None, "note": note,
    }


def submission_entry(row: dict[str, Any], **detail: Any) -> dict[str, Any]:
    """The audit entry acknowledging the report ``row`` (it records the report's digest, which
    verification and export check the stored report against)."""
    return {"action": "feedback", "status": 202, "key_id": row["key_id"], "org": row["org"],
            "detail": {**detail, "feedback_id": row["id"], "row": feedback_digest(row)}}


def _item(r: Any) -> FeedbackItem:
    return FeedbackItem(r.id, r.created, r.key_id, r.org, json.loads(r.record), r.label,
                        r.model_label, float(r.model_confidence), json.loads(r.flags), r.status,
                        r.reviewed_by, r.reviewed_at, r.note)


def cursor(item: FeedbackItem) -> str:
    """The paging cursor after ``item`` (for ``list_feedback(after=...)``)."""
    return f"{item.created}|{item.id}"


def list_feedback(db: GatewayDB, *, status: str | None = None, after: str = "",
                  limit: int | None = 1000,
                  verified: tuple[bytes | None, list[str]] | None = None,
                  dropped: list[str] | None = None) -> list[FeedbackItem]:
    """Reports in the order they came (oldest first), after the :func:`cursor` ``after``; a
    page of ``limit`` (all when None). ``verified=(key, anchor files)``: only those the audit
    log vouches for (its chain and anchors verify, and the report and its status are as it
    recorded; an AuditError when the log does not verify); the ids left out are appended to
    ``dropped``."""
    if status is not None and status not in STATUSES:
        raise ConfigError(f"unknown feedback status {status!r}; use one of {list(STATUSES)}")
    bindings = None if verified is None else chain_bindings(db, *verified)
    f = db.feedback.c
    q = select(db.feedback).order_by(f.created, f.id)
    if limit is not None:
        q = q.limit(limit)
    if after:
        created, _, fid = after.partition("|")
        q = q.where((f.created > created) | ((f.created == created) & (f.id > fid)))
    if status is not None:
        q = q.where(db.feedback.c.status == status)
    with db.engine.connect() as conn:
        rows = conn.execute(q).all()
    if bindings is None:
        return [_item(r) for r in rows]
    out = []
    for r in rows:
        if bindings.feedback_ok(r) is None:
            out.append(_item(r))
        elif dropped is not None:
            dropped.append(r.id)
    return out


def get_feedback(db: GatewayDB, fid: str) -> FeedbackItem | None:
    with db.engine.connect() as conn:
        r = conn.execute(select(db.feedback).where(db.feedback.c.id == fid)).first()
    return None if r is None else _item(r)


def review(db: GatewayDB, writer: AuditWriter, fid: str, decision: str, *, reviewer: str,
           note: str | None = None) -> FeedbackItem:
    """Approve or reject a quarantined report, and audit the decision."""
    if decision not in ("approve", "reject"):
        raise ConfigError(f"a review decision is 'approve' or 'reject'; got {decision!r}")
    status = "approved" if decision == "approve" else "rejected"

    def change(conn: Any) -> bool:
        res = conn.execute(
            update(db.feedback)
            .where(db.feedback.c.id == fid, db.feedback.c.status == "quarantined")
            .values(status=status, reviewed_by=reviewer, reviewed_at=now_iso(), note=note)
        )
        return bool(res.rowcount)

    # the decision and its audit entry in one transaction: the log says what the table holds
    if writer.append_with(change, {"action": f"feedback.{decision}", "status": 200,
                                   "key_id": None, "org": None, "role": "admin",
                                   "detail": {"feedback_id": fid, "reviewer": reviewer}}) is None:
        item = get_feedback(db, fid)
        if item is None:
            raise ConfigError(f"no feedback with id {fid!r}; see 'finmlsec feedback list'")
        raise ConfigError(f"feedback {fid!r} is already {item.status}; only quarantined reports "
                          "can be reviewed")
    item = get_feedback(db, fid)
    assert item is not None
    return item
