"""``/v1/admin/...``: the admin role reads and verifies the audit log, manages API keys (expiry,
rotation; a new admin key needs a second admin's approval), reads the process's guard status
(PRADA's threshold; not in the unauthenticated ``/v1/health``, which would hand an attacker the
bar to stay above) and lifts extraction blocks; the
reviewer role lists and decides the feedback quarantine. Listings are paged (``after``, ``limit``,
``next``). Every action is audited, reads of keys and of raw applicant records included."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from finmlsec.errors import ConfigError
from finmlsec.gateway.audit import read_entries
from finmlsec.gateway.audit_verify import key_state, verify_log
from finmlsec.gateway.deps import commit, json_response, require
from finmlsec.gateway.feedback import cursor, list_feedback, review
from finmlsec.gateway.service import Gateway, Principal
from finmlsec.store.gateway import ROLES

T = TypeVar("T")


class NewKeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    org: str = Field(min_length=1, max_length=200)
    role: str = Field(pattern="^(" + "|".join(ROLES) + ")$")
    name: str = Field(default="", max_length=200)
    expires_days: float | None = Field(default=None, gt=0, le=3650)


class ReviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(default=None, max_length=500)


async def _run(fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args, **kw))


def build_router(gw: Gateway) -> APIRouter:
    router = APIRouter(prefix="/v1/admin", tags=["admin"])
    admin = require("administer", "admin")
    reviewer = require("review", "reviewer")

    @router.get("/audit", summary="Audit entries after a sequence number")
    async def audit(after: int = Query(0, ge=0, le=2**62), limit: int = Query(100, ge=1, le=1000),
                    p: Principal = Depends(admin)) -> Response:
        entries = await _run(read_entries, gw.db, after=after, limit=limit)
        await commit(gw, gw.entry(p, "audit.read", 200, after=after, limit=limit))
        return json_response({"entries": entries})

    @router.get("/audit/verify", summary="Verify the audit hash chain")
    async def verify(p: Principal = Depends(admin)) -> Response:
        anchors = [] if gw.audit.anchor is None else [gw.audit.anchor.path]
        res = await _run(verify_log, gw.db, gw.audit.key, anchors)
        await commit(gw, gw.entry(p, "audit.verify", 200, ok=res.ok))
        return json_response(res.__dict__)

    @router.get("/keys", summary="List API keys, a page at a time (never the keys themselves)")
    async def keys(after: str = Query("", max_length=32, pattern="^[0-9a-f]*$"),
                   limit: int = Query(100, ge=1, le=1000),
                   p: Principal = Depends(admin)) -> Response:
        ks = await _run(gw.db.list_keys, after=after, limit=limit)
        await commit(gw, gw.entry(p, "keys.list", 200, after=after, returned=len(ks)))
        nxt = ks[-1].key_id if len(ks) == limit else None
        return json_response({"keys": [k.as_dict() for k in ks], "next": nxt})

    @router.post("/keys", status_code=201, summary="Create an API key (shown once; an admin key "
                 "works once a second admin approves it)")
    async def create_key(body: NewKeyRequest, p: Principal = Depends(admin)) -> Response:
        k = await _run(gw.db.create_key, org=body.org, role=body.role, name=body.name,
                       expires_days=body.expires_days, requested_by=p.key_id)
        pending = body.role == "admin"
        await commit(gw, gw.entry(p, "keys.create", 201, new_key_id=k.key_id, new_org=k.org,
                                  new_role=k.role, pending_approval=pending,
                                  key=await _run(key_state, gw.db, k.key_id)))
        return json_response({"key_id": k.key_id, "key": k.token, "org": k.org, "role": k.role,
                              "pending_approval": pending}, 201)

    @router.post("/keys/{key_id}/approve", summary="Approve another admin's new admin key",
                 responses={403: {"description": "The requester cannot approve"},
                            404: {"description": "No admin key waits for approval"}})
    async def approve(key_id: str = Path(max_length=32), p: Principal = Depends(admin)) -> Response:
        try:
            ok = await _run(gw.db.approve_key, key_id, p.key_id)
        except ConfigError as exc:
            await commit(gw, gw.entry(p, "keys.approve", 403, target_key_id=key_id))
            raise HTTPException(403, str(exc)) from None
        await commit(gw, gw.entry(p, "keys.approve", 200 if ok else 404, target_key_id=key_id,
                                  key=await _run(key_state, gw.db, key_id) if ok else None))
        if not ok:
            raise HTTPException(404, f"no admin key {key_id!r} waits for approval")
        gw.keys.forget_refusals()
        return json_response({"key_id": key_id, "approved": True})

    @router.post("/keys/{key_id}/rotate", summary="Replace a key's token (shown once)",
                 responses={404: {"description": "No such active key"}})
    async def rotate(key_id: str = Path(max_length=32), p: Principal = Depends(admin),
                     grace_seconds: float | None = Query(
                         None, ge=0, le=604800, description="How long the old token keeps "
                         "working (default: the server's key_rotation_grace_seconds, 300 s; "
                         "0: it stops at once)")) -> Response:
        grace = gw.settings.key_rotation_grace_seconds if grace_seconds is None else grace_seconds
        k = await _run(gw.db.rotate_key, key_id, grace)
        gw.keys.forget(key_id)
        await commit(gw, gw.entry(p, "keys.rotate", 200 if k else 404, target_key_id=key_id,
                                  grace_seconds=grace,
                                  key=await _run(key_state, gw.db, key_id) if k else None))
        if k is None:
            raise HTTPException(404, f"no active key {key_id!r}")
        return json_response({"key_id": k.key_id, "key": k.token, "org": k.org, "role": k.role,
                              "old_key_valid_seconds": grace})

    @router.delete("/keys/{key_id}", summary="Revoke an API key",
                   responses={404: {"description": "No such active key"}})
    async def revoke(key_id: str = Path(max_length=32), p: Principal = Depends(admin)) -> Response:
        ok = await _run(gw.db.revoke_key, key_id)
        gw.keys.forget(key_id)
        await commit(gw, gw.entry(p, "keys.revoke", 200 if ok else 404, target_key_id=key_id,
                                  key=await _run(key_state, gw.db, key_id) if ok else None))
        if not ok:
            raise HTTPException(404, f"no active key {key_id!r}")
        return json_response({"key_id": key_id, "revoked": True})

    @router.get("/feedback", summary="List feedback reports, a page at a time (reviewer)")
    async def feedback(status: str | None = Query(None, pattern="^(quarantined|approved|rejected)$"),
                       after: str = Query("", max_length=120),
                       limit: int = Query(100, ge=1, le=1000),
                       p: Principal = Depends(reviewer)) -> Response:
        items = await _run(list_feedback, gw.db, status=status, after=after, limit=limit)
        # raw applicant records: every read is audited
        await commit(gw, gw.entry(p, "feedback.list", 200, feedback_status=status, after=after,
                                  returned=len(items)))
        nxt = cursor(items[-1]) if len(items) == limit else None
        return json_response({"feedback": [i.as_dict() for i in items], "next": nxt})

    @router.post("/feedback/{fid}/{decision}", summary="Approve or reject a quarantined report "
                 "(reviewer)", responses={404: {"description": "No such quarantined report"}})
    async def decide(fid: str = Path(max_length=40), decision: str = Path(max_length=10),
                     body: ReviewRequest | None = None,
                     p: Principal = Depends(reviewer)) -> Response:
        if decision not in ("approve", "reject"):
            raise HTTPException(404, "decision must be 'approve' or 'reject'")
        try:
            item = await _run(review, gw.db, gw.audit, fid, decision,
                              reviewer=f"key:{p.key_id}", note=body.note if body else None)
        except ConfigError as exc:
            raise HTTPException(404, str(exc)) from None
        return json_response(item.as_dict())

    @router.get("/status", summary="This process's guards: PRADA's threshold (calibrated per "
                "model, or set) and its source, output defence, budgets, screen, key-rotation grace")
    async def status(p: Principal = Depends(admin)) -> Response:
        await commit(gw, gw.entry(p, "status.read", 200))
        return json_response(gw.status())

    @router.post("/clients/{key_id}/unblock", summary="Lift an extraction block or throttle")
    async def unblock(key_id: str, p: Principal = Depends(admin)) -> Response:
        await _run(gw.guards.unblock, key_id)
        await commit(gw, gw.entry(p, "clients.unblock", 200, target_key_id=key_id))
        return json_response({"key_id": key_id, "unblocked": True})

    return router
