"""Dependencies shared by the routers: who is calling (API key -> principal), role checks, and
the helpers that audit a decision before answering.

Requests without a valid key get 401 (429 past the client address's limit, before any key
look-up); they are counted per address digest in one aggregated audit entry per interval, not
one entry each. Authenticated ones with the wrong role get 403, audited with the key id (never
the key).
"""

from __future__ import annotations

import asyncio
import json
import time
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


def client_address(request: Request) -> str:
    """The peer address of the connection (a proxy's own address behind a proxy)."""
    return request.client.host if request.client is not None else "unknown"


async def authorise_header(gw: Gateway, metrics: GatewayMetrics, header: str | None, action: str,
                           roles: tuple[str, ...], client: str) -> Principal:
    """The principal of the ``Authorization`` header's value (as HTTPBearer parses it) for
    ``action``, or the refusal (raised)."""
    scheme, _, token = (header or "").partition(" ")
    token = token.strip() if header and scheme.lower() == "bearer" else ""
    return await _check_token(gw, metrics, token, action, roles, client)


async def _unauthenticated(gw: Gateway, metrics: GatewayMetrics, client: str, action: str,
                           message: str) -> HTTPException:
    """A 401 (or, past the address's limit, a 429) counted for the aggregated audit entry of
    refused unauthenticated requests rather than written one by one."""
    now = time.time()
    status = 429 if gw.throttle.refused(client, now=now) else 401
    gw.throttle.failed(client, action, status, now=now)
    if gw.throttle.due(now):
        gw.flush_refusals(now)
    metrics.requests_child(action, str(status)).inc()
    if status == 429:
        return HTTPException(429, "too many requests without a valid API key from this address; "
                             "retry in a minute", headers={"Retry-After": "60"})
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


async def _check_token(gw: Gateway, metrics: GatewayMetrics, token: str, action: str,
                       roles: tuple[str, ...], client: str) -> Principal:
    if not token:
        raise await _unauthenticated(gw, metrics, client, action,
                                     "an API key is required (Authorization: Bearer <key>)")
    hit = gw.keys.cached(token)  # a known key works from any address
    if isinstance(hit, Miss):
        if gw.throttle.refused(client, now=time.time()) and not gw.keys.known(token):
            # no look-up for a flooding address (but a key verified before still works)
            raise await _unauthenticated(gw, metrics, client, action, "")
        # one indexed look-up, off the event loop
        hit = await asyncio.get_running_loop().run_in_executor(None, gw.keys.lookup, token)
    p = hit
    if p is None:
        raise await _unauthenticated(gw, metrics, client, action, "unknown or revoked API key")
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
        return await _check_token(request.app.state.gateway, request.app.state.metrics,
                                  cred.credentials if cred is not None else "", action, roles,
                                  client_address(request))

    return dependency
