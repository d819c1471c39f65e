"""The FastAPI application factory: ``create_app(settings, target=..., schema=...)``.

No module-global app: each call builds a fresh app with its own gateway state (model, guards,
storage, metrics); routers are one per resource, authentication and limits are dependencies.
The hot ``POST /v1/predict`` is answered by a raw ASGI route (see :func:`raw_route`): the first
route of the router, inside the middleware stack, so it skips only FastAPI's per-request
dependency resolution and body binding; the FastAPI route of the same path documents it in the
OpenAPI document and answers instead when ``Settings.lean_predict`` is false.

Example:
    >>> import httpx, asyncio
    >>> from finmlsec.gateway.demo import credit_scoring_model
    >>> m = credit_scoring_model()
    >>> app = create_app(Settings(db_url="sqlite://"), target=m.target, schema=m.schema)
    >>> async def health():
    ...     async with app.router.lifespan_context(app):
    ...         t = httpx.ASGITransport(app=app)
    ...         async with httpx.AsyncClient(transport=t, base_url="http://gw") as c:
    ...             return (await c.get("/v1/health")).json()["status"]
    >>> asyncio.run(health())
    'ok'
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.routing import Route

from finmlsec.errors import ConfigError, FinmlsecError, StoreError
from finmlsec.gateway.metrics import GatewayMetrics
from finmlsec.gateway.responses import error_response
from finmlsec.gateway.service import Gateway
from finmlsec.gateway.settings import Settings
from finmlsec.schema import FeatureSchema
from finmlsec.targets.base import Target, as_target


def create_app(
    settings: Settings,
    *,
    target: Any = None,
    schema: FeatureSchema | None = None,
    spec: str | Path | None = None,
    reference: Any = None,
    trust_pickle: bool = False,
    class_names: list[str] | None = None,
    feedback_organisations: list[str] | None = None,
) -> FastAPI:
    """Build the gateway app for an already loaded ``target`` (with its ``schema``), or for the
    model and schema a ``spec`` file names (via :func:`finmlsec.scenario.load_scenario`).

    Who may send false-prediction data: the policy's ``feedback.organisations``, else
    ``feedback_organisations``, else (with a spec) the organisations the spec names as system
    users, else every system-user key."""
    if target is None:
        if spec is None:
            raise ConfigError("create_app needs a target (and its schema) or a spec file")
        target, schema, reference, class_names, spec_users = _from_spec(spec, trust_pickle)
        feedback_organisations = feedback_organisations or spec_users
    tgt: Target = as_target(target)
    if schema is None:
        raise ConfigError(
            "the gateway validates every input against a feature schema; pass schema=... or give "
            "the spec a data section with a schema"
        )
    gateway = Gateway(settings, target=tgt, schema=schema, reference=reference,
                      class_names=class_names, feedback_organisations=feedback_organisations)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        listener = None
        if settings.metrics_listen:
            listener = MetricsListener(settings.metrics_listen, app.state.metrics)
            await asyncio.get_running_loop().run_in_executor(None, listener.start)
        try:
            yield
        finally:
            if listener is not None:
                await asyncio.get_running_loop().run_in_executor(None, listener.stop)
        await asyncio.get_running_loop().run_in_executor(None, gateway.close)

    app = FastAPI(
        title=settings.title,
        version="1",
        description="The model operator as a guarded service (finmlsec). Authenticate with "
        "`Authorization: Bearer <API key>`.",
        lifespan=lifespan,
        docs_url="/docs" if settings.api_docs else None,
        redoc_url="/redoc" if settings.api_docs else None,
    )
    app.state.gateway = gateway
    app.state.metrics = GatewayMetrics()

    from finmlsec.gateway.routers import admin, feedback, health, metrics, predict

    if settings.lean_predict:
        app.router.routes.append(raw_route(
            "/v1/predict", predict.lean_predict(gateway, app.state.metrics), methods=["POST"]))
    routers = [predict, feedback, health, admin]
    if not settings.metrics_listen:
        routers.append(metrics)
    for module in routers:
        app.include_router(module.build_router(gateway))
    _install_error_handlers(app)
    return app


class MetricsListener:
    """``GET /metrics`` on its own ``host:port``, served by a uvicorn server in a thread of this
    process (so it can be bound to an internal interface apart from the API)."""

    def __init__(self, listen: str, metrics: GatewayMetrics) -> None:
        import uvicorn
        from prometheus_client import CONTENT_TYPE_LATEST
        from starlette.applications import Starlette

        host, port = listen.rsplit(":", 1)

        async def render(request: Request) -> Response:
            return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

        app = Starlette(routes=[Route("/metrics", render)])
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=int(port),
                                                    log_level="warning", access_log=False,
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, name="finmlsec-metrics",
                                       daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError("the metrics listener could not start (is its address in "
                                  "use?)")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


class _RawEndpoint:
    """An ASGI callable (Starlette calls an object that is not a function as a raw ASGI app)."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.handler(scope, receive, send)


def raw_route(path: str, handler: Any, *, methods: list[str]) -> Route:
    """A route that hands ``(scope, receive, send)`` to ``handler`` as they come: no request
    object, dependency resolution or body binding. Add it to ``app.router.routes`` before the
    FastAPI route of the same path (which stays for the OpenAPI document): the first match wins.
    The middleware stack still wraps it (an exception it raises becomes the server's 500)."""
    return Route(path, _RawEndpoint(handler), methods=methods, include_in_schema=False)


def _from_spec(
    spec: str | Path, trust_pickle: bool
) -> tuple[Any, FeatureSchema | None, Any, list[str] | None, list[str] | None]:
    try:
        from finmlsec.scenario import load_scenario
    except ImportError:  # pragma: no cover - a partial installation
        raise ConfigError(
            "serving a spec needs finmlsec.scenario, which this installation lacks"
        ) from None
    sc = load_scenario(spec, trust_pickle=trust_pickle)
    if sc.target is None:
        raise ConfigError(f"the spec {str(spec)!r} has no model section; the gateway serves the "
                          "model it names (see 'finmlsec demo build' for an example)")
    train = getattr(sc, "train", None)
    reference = train.X if train is not None else None
    names = None
    dataset = getattr(sc, "dataset", None)
    labels = [str(c) for c in sc.target.classes_]
    if dataset is not None and labels == [str(i) for i in range(len(dataset.classes))]:
        names = [str(c) for c in dataset.classes]  # integer-coded model: answer with the names
    roles = getattr(getattr(sc, "spec", None), "roles", None)
    users = list(roles.system_user) if roles is not None else None
    return sc.target, sc.schema, reference, names, users


def _install_error_handlers(app: FastAPI) -> None:
    async def handle(request: Request, exc: Exception) -> Response:
        answer = error_response(exc)
        if answer is None:  # pragma: no cover - only the mapped types are registered
            raise exc
        status, body, headers = answer
        return Response(body, status_code=status,
                        headers={k.decode("latin-1"): v.decode("latin-1") for k, v in headers})

    for kind in (HTTPException, RequestValidationError, StoreError, FinmlsecError):
        app.add_exception_handler(kind, handle)
