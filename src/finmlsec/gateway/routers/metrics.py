"""``GET /metrics``: Prometheus text format (request counts, latency, rows, guard decisions)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from finmlsec.gateway.service import Gateway


def build_router(gw: Gateway) -> APIRouter:
    router = APIRouter(tags=["metrics"])

    @router.get("/metrics", summary="Prometheus metrics",
                responses={200: {"content": {"text/plain": {}}}})
    async def metrics(request: Request) -> Response:
        return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    return router
