"""``POST /v1/predict``: one record, a list of records, or a column-oriented batch (flows D-F).

Guards in order: API key and role, block/throttle after extraction detection, request rate limit,
payload size, schema validation, record budget, input screening, then the model (micro-batched),
the output modification, PRADA, and the audit entry, committed before the answer is sent.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response

from finmlsec.gateway.deps import authorise_header, commit, refuse_counted, too_many
from finmlsec.gateway.metrics import GatewayMetrics
from finmlsec.gateway.service import Gateway, Principal
from finmlsec.gateway.validation import InputProblem, record_json_schema


def request_schema(gw: Gateway) -> dict[str, Any]:
    record = record_json_schema(gw.schema)
    names = gw.schema.names
    return {
        "oneOf": [
            {"type": "object", "title": "OneRecord", "properties": {"record": record},
             "required": ["record"], "additionalProperties": False},
            {"type": "object", "title": "Records",
             "properties": {"records": {"type": "array", "items": record, "minItems": 1,
                                        "maxItems": gw.policy.input.max_batch_rows}},
             "required": ["records"], "additionalProperties": False},
            {"type": "object", "title": "Columns",
             "properties": {
                 "columns": {"type": "array", "items": {"type": "string", "enum": names},
                             "minItems": len(names), "maxItems": len(names), "uniqueItems": True},
                 "data": {"type": "array", "minItems": 1,
                          "items": {"type": "array", "minItems": len(names),
                                    "maxItems": len(names)}}},
             "required": ["columns", "data"], "additionalProperties": False},
        ]
    }


RESPONSE_SCHEMA = {
    "type": "object",
    "properties": {
        "request_id": {"type": "string"},
        "classes": {"type": "array", "items": {"type": "string"}},
        "labels": {"type": "array", "items": {"type": "string"}},
        "probabilities": {"anyOf": [
            {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
            {"type": "null"}]},
    },
    "required": ["request_id", "classes", "labels", "probabilities"],
}


async def read_json(gw: Gateway, request: Request, p: Principal | None, action: str) -> Any:
    """The parsed JSON body, refusing oversized (413) or malformed (400) payloads."""
    return await read_body_json(gw, request.app.state.metrics, p, action,
                                request.headers.get("content-length"), request.stream())


async def read_body_json(gw: Gateway, metrics: GatewayMetrics, p: Principal | None, action: str,
                         declared: str | None, stream: AsyncIterator[bytes]) -> Any:
    """:func:`read_json` given the ``Content-Length`` header and the body's chunks."""
    limit = gw.policy.input.max_body_bytes
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise await refuse_counted(gw, metrics, p, 413, action,
                                   f"payload of {declared} bytes exceeds the limit of {limit} "
                                   "bytes; send smaller batches")
    chunks, size = [], 0
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            raise await refuse_counted(gw, metrics, p, 413, action, f"payload exceeds the limit "
                                       f"of {limit} bytes; send smaller batches")
        chunks.append(chunk)
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    try:
        if len(body) > LARGE_BODY:  # parse in the model thread (see LARGE_BODY)
            return await gw.batcher.run_alone(json.loads, body), body
        return json.loads(body), body
    except (ValueError, UnicodeDecodeError) as exc:
        raise await refuse_counted(gw, metrics, p, 400, action,
                                   f"the body is not valid JSON ({exc.__class__.__name__}: "
                                   f"{str(exc)[:120]})") from None


ROLES = ("system_user",)
# Bodies larger than this are parsed, checked and answered in the model thread, one after the
# other with the prediction and the input screen. In the event loop's thread, a 3 MB json.loads
# holds the GIL for 15 ms without a break, and the screen's trees (each releasing the GIL for
# its traversal) waited that long to get it back, tree after tree: a 10,000-row screen took
# 150-280 ms instead of 30.
LARGE_BODY = 1 << 18


async def predict_answer(gw: Gateway, metrics: GatewayMetrics, authorization: str | None,
                         declared: str | None, stream: AsyncIterator[bytes]) -> bytes:
    """Everything ``POST /v1/predict`` does, independent of the web framework: the JSON body of
    the 200 answer, or an ``HTTPException`` (raised) for a refusal, audited and counted. The
    FastAPI route and the lean ASGI path (:func:`lean_predict`) both call this."""
    t0 = time.perf_counter()
    p: Principal = await authorise_header(gw, metrics, authorization, "predict", ROLES)
    blocked = gw.check_block(p)
    if blocked == "block":
        metrics.guards.labels(guard="extraction", decision="blocked").inc()
        raise await refuse_counted(gw, metrics, p, 403, "predict",
                                   "this client is blocked: its queries look like model "
                                   "extraction; contact the operator")
    if blocked is not None and not isinstance(blocked, str):
        msg, headers = too_many(blocked)
        metrics.guards.labels(guard="extraction", decision="throttled").inc()
        raise await refuse_counted(gw, metrics, p, 429, "predict", "throttled after extraction "
                                   f"detection; {msg}", headers=headers)
    d = gw.charge_request(p)
    if not d.allowed:
        msg, headers = too_many(d)
        metrics.guards.labels(guard="rate_limit", decision="refused").inc()
        raise await refuse_counted(gw, metrics, p, 429, "predict", msg, headers=headers)
    payload, body = await read_body_json(gw, metrics, p, "predict", declared, stream)
    records: list[dict[str, Any]] | None = None
    X: Any = None
    max_rows = gw.policy.input.max_batch_rows
    try:
        if not isinstance(payload, dict):
            raise InputProblem("the body must be a JSON object with 'record', 'records' or "
                               "'columns' and 'data'")
        if len(payload) == 1 and "record" in payload:
            records = gw.validator.validate([payload["record"]])
        elif len(payload) == 1 and "records" in payload:
            rows = payload["records"]
            if isinstance(rows, list) and len(rows) > max_rows:
                raise InputProblem(f"{len(rows)} records exceed the batch limit of {max_rows}")
            records = gw.validator.validate(rows)
        elif len(payload) == 2 and "columns" in payload and "data" in payload:
            data = payload["data"]
            if isinstance(data, list) and len(data) > max_rows:
                raise InputProblem(f"{len(data)} rows exceed the batch limit of {max_rows}")
            X = await gw.batcher.run_alone(_columns, gw, payload["columns"], data)
        else:
            raise InputProblem(f"unexpected fields {sorted(payload)}; send 'record', 'records', "
                               "or 'columns' and 'data'")
        n = (len(records) if records is not None else
             len(X[gw.schema.names[0]]) if isinstance(X, dict) else len(X))
        if n == 0:
            raise InputProblem("no records to predict")
        if n > max_rows:
            raise InputProblem(f"{n} records exceed the batch limit of {max_rows}")
    except InputProblem as exc:
        metrics.guards.labels(guard="validation", decision="refused").inc()
        raise await refuse_counted(gw, metrics, p, 422, "predict", str(exc),
                                   digest=gw.digest(body)) from None
    d = gw.charge_rows(p, n)
    if not d.allowed:
        msg, headers = too_many(d)
        metrics.guards.labels(guard="budget", decision="refused").inc()
        raise await refuse_counted(gw, metrics, p, 429, "predict", msg, headers=headers, rows=n)
    if records is not None and n <= gw.settings.predict_batch_max_rows:
        out = await gw.batcher.submit(records)
    else:
        out = await gw.batcher.run_alone(
            gw.predict_sampled, X if X is not None else gw.validator.frame(records or []))
    parts = gw.split(out)
    bad = parts["suspicious"]
    if bad.any():
        metrics.guards.labels(guard="screening", decision="suspicious").inc()
        if gw.policy.screening.action == "reject":
            raise await refuse_counted(
                gw, metrics, p, 422, "predict",
                f"{int(bad.sum())} record(s) look out of distribution or adversarial (first: row "
                f"{int(np.argmax(bad))}); nothing was answered", rows=n, digest=gw.digest(body))
    top = np.argmax(parts["proba"], axis=1)
    out_p = parts["answer"]
    newly, why = gw.observe(p, parts)
    rid = uuid.uuid4().hex
    if newly:
        metrics.guards.labels(guard="extraction", decision="flagged").inc()
        await commit(gw, gw.entry(p, "extraction.flagged", 200, request_id=rid,
                                  response=gw.policy.extraction.action, **why))
    await commit(gw, gw.entry(p, "predict", 200, request_id=rid, rows=n, digest=gw.digest(body)))
    names = gw.class_names
    labels = [names[i] for i in top.tolist()]
    probs = None if gw.policy.output.mode == "label_only" else out_p.tolist()
    metrics.rows.inc(n)
    metrics.requests_child("predict", "200").inc()
    metrics.latency_child("predict").observe(time.perf_counter() - t0)
    answer = {"request_id": rid, "classes": names, "labels": labels, "probabilities": probs}
    if n > 1000:  # a long serialisation: in the model thread too
        return await gw.batcher.run_alone(_dumps, answer)
    return _dumps(answer)


def _dumps(answer: dict[str, Any]) -> bytes:
    return json.dumps(answer, separators=(",", ":"), allow_nan=False).encode()


def _columns(gw: Gateway, columns: Any, data: Any) -> Any:
    """A column batch, validated: vectorised checks, else the full check (which accepts the
    batch or names the problem)."""
    X = gw.validator.columns_if_valid(columns, data)
    return X if X is not None else gw.validator.validate_columns(columns, data)


def build_router(gw: Gateway) -> APIRouter:
    router = APIRouter(tags=["predict"])

    @router.post(
        "/v1/predict",
        summary="Predict one record or a batch",
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": request_schema(gw)}}},
            "security": [{"HTTPBearer": []}]},
        responses={200: {"description": "Predictions",
                         "content": {"application/json": {"schema": RESPONSE_SCHEMA}}},
                   400: {"description": "Malformed JSON"}, 401: {"description": "No valid key"},
                   403: {"description": "Wrong role, or client blocked"},
                   413: {"description": "Payload too large"},
                   422: {"description": "Records do not satisfy the schema"},
                   429: {"description": "Rate limit or budget exceeded"}},
    )
    async def predict(request: Request) -> Response:
        body = await predict_answer(gw, request.app.state.metrics,
                                    request.headers.get("authorization"),
                                    request.headers.get("content-length"), request.stream())
        return Response(content=body, status_code=200, media_type="application/json")

    return router


# -- the lean ASGI path --------------------------------------------------------------------------
_JSON = (b"content-type", b"application/json")
_ERROR_500 = b"Internal Server Error"


def lean_predict(gw: Gateway, metrics: GatewayMetrics) -> Callable[..., Awaitable[None]]:
    """An ASGI handler for ``POST /v1/predict`` that the app calls before its middleware and
    routing (which cost more per request than the guards). It sends the same answers as the
    FastAPI route (same status, body and headers, including refusals rendered as FastAPI renders
    an ``HTTPException``, 503 for storage errors, 422 for other finmlsec errors, and 500 as
    Starlette's error middleware sends it) because both call :func:`predict_answer`."""

    async def handle(scope: dict[str, Any], receive: Any, send: Any) -> None:
        authorization = declared = None
        for k, v in scope["headers"]:  # names are lower case in ASGI; the first one counts
            if k == b"authorization":
                if authorization is None:
                    authorization = v.decode("latin-1")
            elif k == b"content-length" and declared is None:
                declared = v.decode("latin-1")
        try:
            body = await predict_answer(gw, metrics, authorization, declared, _stream(receive))
            status, headers = 200, [(b"content-length", str(len(body)).encode()), _JSON]
        except _Disconnected:
            return
        except Exception as exc:  # noqa: BLE001 - rendered as the app's handlers render it
            status, body, headers = _error(exc)
            if status == 500:
                await _send(send, status, body, headers)
                raise
        await _send(send, status, body, headers)

    return handle


class _Disconnected(Exception):
    pass


async def _stream(receive: Any) -> AsyncIterator[bytes]:
    """The request body's chunks, as ``starlette.requests.Request.stream`` yields them."""
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunk = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body", False):
                break
        elif message["type"] == "http.disconnect":
            raise _Disconnected()
    yield b""


def _error(exc: Exception) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """Status, body and headers of the answer the app's exception handlers give for ``exc``."""
    from starlette.exceptions import HTTPException

    from finmlsec.errors import FinmlsecError, StoreError

    extra: dict[str, str] = {}
    if isinstance(exc, HTTPException):
        status, content = exc.status_code, {"detail": exc.detail}
        extra = dict(exc.headers or {})
    elif isinstance(exc, StoreError):
        status, content = 503, {"detail": f"storage unavailable: {exc}"}
        extra = {"Retry-After": "1"}
    elif isinstance(exc, FinmlsecError):
        status, content = 422, {"detail": str(exc)}
    else:
        return 500, _ERROR_500, [(b"content-length", b"21"),
                                 (b"content-type", b"text/plain; charset=utf-8")]
    body = json.dumps(content, ensure_ascii=False, allow_nan=False, indent=None,
                      separators=(",", ":")).encode("utf-8")
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]
    return status, body, headers + [(b"content-length", str(len(body)).encode()), _JSON]


async def _send(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
