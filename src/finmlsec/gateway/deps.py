"""Dependencies shared by the routers: who is calling (API key -> principal), role checks, and
the helpers that audit a decision before answering.

Unauthenticated requests get 401 and authenticated ones with the wrong role 403; both are audited
(with the key id when one was recognised, never the key).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, HTTPException, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from finmlsec.defences.ratelimit import BudgetDecision
from finmlsec.gateway.keycache import Miss
from finmlsec.gateway.metrics import GatewayMetrics
from finmlsec.gateway.service import Gateway, Principal

bearer = HTTPBearer(auto_error=False, description="An API key from `finmlsec keys create`.")


async def commit(gw: Gateway, entry: dict[str, Any], feedback: dict[str, Any] | None = None) -> int:
    """Queue an audit entry (and feedback row) and wait until it is committed."""
    return await gw.audit.submit_async(entry, feedback)


def json_response(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(content, separators=(",", ":"), allow_nan=False)
    return Response(content=body, status_code=status, media_type="application/json",
                    headers=headers)


async def refuse(gw: Gateway, request: Request, p: Principal | None, status: int, action: str,
                 message: str, *, headers: dict[str, str] | None = None,
                 audit_reason: str | None = None, **detail: Any) -> HTTPException:
    """Audit a refusal, count it, and return the HTTPException to raise."""
    return await refuse_counted(gw, request.app.state.metrics, p, status, action, message,
                                headers=headers, audit_reason=audit_reason, **detail)


async def refuse_counted(gw: Gateway, metrics: GatewayMetrics, p: Principal | None, status: int,
                         action: str, message: str, *, headers: dict[str, str] | None = None,
                         audit_reason: str | None = None, **detail: Any) -> HTTPException:
    """:func:`refuse` given the metrics rather than the request. ``audit_reason``: what the
    audit log keeps instead of ``message`` (one without the personal values the client sent)."""
    await commit(gw, gw.entry(p, action, status, reason=audit_reason or message, **detail))
    metrics.requests.labels(endpoint=action, status=str(status)).inc()
    return HTTPException(status_code=status, detail=message, headers=headers)


def too_many(d: BudgetDecision) -> tuple[str, dict[str, str] | None]:
    """Message and headers of a 429 for a refusing budget decision."""
    if d.retry_after is None:
        return (f"the {d.window} query budget of {d.limit} is spent; ask the operator for more",
                None)
    secs = max(1, int(d.retry_after + 0.999))
    return (f"rate limit: at most {d.limit} per {d.window}; retry in {secs} s",
            {"Retry-After": str(secs)})


async def authorise(gw: Gateway, request: Request, action: str, roles: tuple[str, ...]) -> Principal:
    """What :func:`require`'s dependency does, called directly by the hot ``/v1/predict`` route
    (FastAPI's dependency resolution costs more per request than the check itself); the route
    declares the same bearer security scheme in its OpenAPI operation."""
    return await authorise_header(gw, request.app.state.metrics,
                                  request.headers.get("authorization"), action, roles)


async def authorise_header(gw: Gateway, metrics: GatewayMetrics, header: str | None, action: str,
                           roles: tuple[str, ...]) -> Principal:
    """:func:`authorise` given the ``Authorization`` header's value (as HTTPBearer parses it)."""
    scheme, _, token = (header or "").partition(" ")
    token = token.strip() if header and scheme.lower() == "bearer" else ""
    return await _check_token(gw, metrics, token, action, roles)


async def _check(gw: Gateway, request: Request, cred: HTTPAuthorizationCredentials | None,
                 action: str, roles: tuple[str, ...]) -> Principal:
    return await _check_token(gw, request.app.state.metrics,
                              cred.credentials if cred is not None else "", action, roles)


async def _check_token(gw: Gateway, metrics: GatewayMetrics, token: str, action: str,
                       roles: tuple[str, ...]) -> Principal:
    if not token:
        raise await refuse_counted(gw, metrics, None, 401, action, "an API key is required "
                                   "(Authorization: Bearer <key>)",
                                   headers={"WWW-Authenticate": "Bearer"})
    hit = gw.keys.cached(token)
    p = (await asyncio.get_running_loop().run_in_executor(None, gw.keys.lookup, token)
         if isinstance(hit, Miss) else hit)  # a miss: one indexed lookup, off the event loop
    if p is None:
        raise await refuse_counted(gw, metrics, None, 401, action, "unknown or revoked API key",
                                   headers={"WWW-Authenticate": "Bearer"})
    if p.role not in roles:
        raise await refuse_counted(
            gw, metrics, p, 403, action,
            f"role {p.role!r} may not {action}; needed: {' or '.join(roles)}")
    return p


def require(action: str, *roles: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that authenticates the caller and checks its role for ``action``."""

    async def dependency(
        request: Request, cred: HTTPAuthorizationCredentials | None = Depends(bearer)
    ) -> Principal:
        return await _check(request.app.state.gateway, request, cred, action, roles)

    return dependency
