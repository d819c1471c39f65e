"""``/v1/admin/...``: the admin role reads and verifies the audit log, manages API keys, reviews
the feedback quarantine and lifts extraction blocks. Every action is audited."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from finmlsec.errors import ConfigError
from finmlsec.gateway.audit import read_entries, verify_chain
from finmlsec.gateway.deps import commit, json_response, require
from finmlsec.gateway.feedback import list_feedback, review
from finmlsec.gateway.service import Gateway, Principal
from finmlsec.store.gateway import ROLES

T = TypeVar("T")


class NewKeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    org: str = Field(min_length=1, max_length=200)
    role: str = Field(pattern="^(" + "|".join(ROLES) + ")$")
    name: str = Field(default="", max_length=200)


class ReviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = Field(default=None, max_length=500)


async def _run(fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, lambda: fn(*args, **kw))


def build_router(gw: Gateway) -> APIRouter:
    router = APIRouter(prefix="/v1/admin", tags=["admin"])
    admin = require("administer", "admin")

    @router.get("/audit", summary="Audit entries after a sequence number")
    async def audit(after: int = Query(0, ge=0, le=2**62), limit: int = Query(100, ge=1, le=1000),
                    p: Principal = Depends(admin)) -> Response:
        entries = await _run(read_entries, gw.db, after=after, limit=limit)
        await commit(gw, gw.entry(p, "audit.read", 200, after=after, limit=limit))
        return json_response({"entries": entries})

    @router.get("/audit/verify", summary="Verify the audit hash chain")
    async def verify(p: Principal = Depends(admin)) -> Response:
        res = await _run(verify_chain, gw.db)
        await commit(gw, gw.entry(p, "audit.verify", 200, ok=res.ok))
        return json_response(res.__dict__)

    @router.get("/keys", summary="List API keys (never the keys themselves)")
    async def keys(p: Principal = Depends(admin)) -> Response:
        ks = await _run(gw.db.list_keys)
        return json_response({"keys": [{"key_id": k.key_id, "org": k.org, "role": k.role,
                                        "name": k.name, "created": k.created,
                                        "revoked": k.revoked} for k in ks]})

    @router.post("/keys", status_code=201, summary="Create an API key (shown once)")
    async def create_key(body: NewKeyRequest, p: Principal = Depends(admin)) -> Response:
        k = await _run(gw.db.create_key, org=body.org, role=body.role, name=body.name)
        await commit(gw, gw.entry(p, "keys.create", 201, new_key_id=k.key_id, new_org=k.org,
                                  new_role=k.role))
        return json_response({"key_id": k.key_id, "key": k.token, "org": k.org,
                              "role": k.role}, 201)

    @router.delete("/keys/{key_id}", summary="Revoke an API key",
                   responses={404: {"description": "No such active key"}})
    async def revoke(key_id: str, p: Principal = Depends(admin)) -> Response:
        ok = await _run(gw.db.revoke_key, key_id)
        gw.keys.forget(key_id)
        await commit(gw, gw.entry(p, "keys.revoke", 200 if ok else 404, target_key_id=key_id))
        if not ok:
            raise HTTPException(404, f"no active key {key_id!r}")
        return json_response({"key_id": key_id, "revoked": True})

    @router.get("/feedback", summary="List feedback reports")
    async def feedback(status: str | None = Query(None, pattern="^(quarantined|approved|rejected)$"),
                       p: Principal = Depends(admin)) -> Response:
        items = await _run(list_feedback, gw.db, status=status)
        return json_response({"feedback": [i.as_dict() for i in items]})

    @router.post("/feedback/{fid}/{decision}", summary="Approve or reject a quarantined report",
                 responses={404: {"description": "No such quarantined report"}})
    async def decide(fid: str, decision: str, body: ReviewRequest | None = None,
                     p: Principal = Depends(admin)) -> Response:
        if decision not in ("approve", "reject"):
            raise HTTPException(404, "decision must be 'approve' or 'reject'")
        try:
            item = await _run(review, gw.db, gw.audit, fid, decision,
                              reviewer=f"key:{p.key_id}", note=body.note if body else None)
        except ConfigError as exc:
            raise HTTPException(404, str(exc)) from None
        return json_response(item.as_dict())

    @router.post("/clients/{key_id}/unblock", summary="Lift an extraction block or throttle")
    async def unblock(key_id: str, p: Principal = Depends(admin)) -> Response:
        await _run(gw.guards.unblock, key_id)
        await commit(gw, gw.entry(p, "clients.unblock", 200, target_key_id=key_id))
        return json_response({"key_id": key_id, "unblocked": True})

    return router
