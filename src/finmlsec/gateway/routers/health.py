"""``GET /v1/health`` (the process answers) and ``GET /v1/ready`` (model, database and counter
store answer; 503 otherwise). Neither needs a key, and neither reveals configuration."""

from __future__ import annotations

import asyncio

import numpy as np
from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import select

from finmlsec.gateway.deps import json_response
from finmlsec.gateway.service import Gateway


def build_router(gw: Gateway) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/v1/health", summary="Liveness")
    async def health() -> Response:
        return json_response({"status": "ok"})

    @router.get("/v1/ready", summary="Readiness: model, database and counter store answer",
                responses={503: {"description": "Not ready"}})
    async def ready() -> Response:
        def probe() -> dict[str, str]:
            checks: dict[str, str] = {}
            try:
                with gw.db.engine.connect() as conn:
                    conn.execute(select(gw.db.head.c.seq)).first()
                checks["database"] = "ok"
            except Exception:  # noqa: BLE001 - reported, not raised
                checks["database"] = "unavailable"
            try:
                gw.store.get_flag("ready-probe")
                checks["counters"] = "ok"
            except Exception:  # noqa: BLE001
                checks["counters"] = "unavailable"
            checks["model"] = "ok" if len(np.atleast_1d(gw.classes)) >= 1 else "unavailable"
            return checks

        checks = await asyncio.get_running_loop().run_in_executor(None, probe)
        ok = all(v == "ok" for v in checks.values())
        return json_response({"status": "ready" if ok else "not ready", "checks": checks},
                             200 if ok else 503)

    return router
