"""``POST /v1/predict``: one record, a list of records, or a column-oriented batch (flows D-F).

Guards in order. Admission, before the body is read: API key and role (requests without a valid
key limited per client address), block/throttle after extraction detection, request rate limit,
concurrent requests of the key, the record budget for the records the ``Record-Count`` header
declares (one record for a body over 256 KiB that declares none), media type and declared size. Then: the body read within its size
limit and parsed strictly, schema validation, the rest of the record budget, input screening,
the model (micro-batched), the output modification, PRADA, and the audit entry, committed before
the answer is sent.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response

from finmlsec.gateway.body import BadBody, json_media_type, parse
from finmlsec.gateway.deps import (
    authorise_header,
    client_address,
    commit,
    refuse_counted,
    too_many,
)
from finmlsec.gateway.metrics import GatewayMetrics
from finmlsec.gateway.responses import JSON, error_response
from finmlsec.gateway.service import Gateway, Principal
from finmlsec.gateway.validation import InputProblem, Valid, record_json_schema, short


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


BLOCKED = ("this client is blocked: its queries look like model extraction; contact the "
           "operator")


@dataclass(frozen=True)
class Head:
    """What admission looks at before the body: the headers it needs and the client address."""

    authorization: str | None = None
    content_type: str | None = None
    content_length: str | None = None
    record_count: str | None = None
    client: str = "unknown"

    @classmethod
    def of(cls, request: Request) -> Head:
        h = request.headers
        return cls(h.get("authorization"), h.get("content-type"), h.get("content-length"),
                   h.get("record-count"), client_address(request))


async def read_json(gw: Gateway, request: Request, p: Principal | None, action: str) -> Any:
    """The parsed JSON body and its bytes (see :func:`read_body_json`)."""
    return await read_body_json(gw, request.app.state.metrics, p, action, Head.of(request),
                                request.stream())


async def read_body_json(gw: Gateway, metrics: GatewayMetrics, p: Principal | None, action: str,
                         head: Head, stream: AsyncIterator[bytes]) -> Any:
    """The parsed JSON body and its bytes: 415 unless the ``Content-Type`` is JSON and 413 for a
    declared ``Content-Length`` over the limit (both before reading), 413 when the body grows
    past it, 400 for malformed, duplicate-key or too deeply nested JSON
    (:mod:`finmlsec.gateway.body`)."""
    if not json_media_type(head.content_type):
        raise await refuse_counted(gw, metrics, p, 415, action,
                                   "send the body as JSON with 'Content-Type: application/json'")
    limit = gw.policy.input.max_body_bytes
    declared = head.content_length
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
            return await gw.predictor.batcher.run_alone(parse, body), body
        return parse(body), body
    except BadBody as exc:
        raise await refuse_counted(gw, metrics, p, 400, action, str(exc)) from None


ROLES = ("system_user",)
# Bodies larger than this are parsed, checked and answered in the model thread, one after the
# other with the prediction and the input screen. In the event loop's thread, a 3 MB json.loads
# holds the GIL for 15 ms without a break, and the screen's trees (each releasing the GIL for
# its traversal) waited that long to get it back, tree after tree: a 10,000-row screen took
# 150-280 ms instead of 30.
LARGE_BODY = 1 << 18


async def predict_answer(gw: Gateway, metrics: GatewayMetrics, head: Head,
                         stream: AsyncIterator[bytes]) -> bytes:
    """Everything ``POST /v1/predict`` does, independent of the web framework: the JSON body of
    the 200 answer, or an ``HTTPException`` (raised) for a refusal, audited and counted. The
    FastAPI route and the raw route (:func:`lean_predict`) both call this."""
    t0 = time.perf_counter()
    p: Principal = await authorise_header(gw, metrics, head.authorization, "predict", ROLES,
                                          head.client)
    guards = gw.guards
    blocked = await gw.guard(guards.check_block, p)
    if blocked == "block":
        metrics.guards.labels(guard="extraction", decision="blocked").inc()
        raise await refuse_counted(gw, metrics, p, 403, "predict", BLOCKED)
    if blocked is not None and not isinstance(blocked, str):
        msg, headers = too_many(blocked)
        metrics.guards.labels(guard="extraction", decision="throttled").inc()
        raise await refuse_counted(gw, metrics, p, 429, "predict", "throttled after extraction "
                                   f"detection; {msg}", headers=headers)
    # request rates: in this process's memory without Redis (no I/O), in Redis with it
    d = (await gw.guard(guards.charge_request, p) if gw.settings.redis_url
         else guards.charge_request(p))
    if not d.allowed:
        msg, headers = too_many(d)
        metrics.guards.labels(guard="rate_limit", decision="refused").inc()
        raise await refuse_counted(gw, metrics, p, 429, "predict", msg, headers=headers)
    if gw.in_flight.full():
        metrics.guards.labels(guard="concurrency", decision="overloaded").inc()
        raise await refuse_counted(
            gw, metrics, p, 503, "predict", f"the server is answering {gw.in_flight.total} "
            "requests already; retry shortly", headers={"Retry-After": "1"})
    if not gw.in_flight.enter(p.key_id):
        metrics.guards.labels(guard="concurrency", decision="refused").inc()
        raise await refuse_counted(
            gw, metrics, p, 429, "predict", f"at most {gw.in_flight.limit} requests of one API "
            "key at a time; wait for an answer before sending more", headers={"Retry-After": "1"})
    try:
        return await _admitted(gw, metrics, p, head, stream, t0)
    finally:
        gw.in_flight.leave(p.key_id)


async def _admitted(gw: Gateway, metrics: GatewayMetrics, p: Principal, head: Head,
                    stream: AsyncIterator[bytes], t0: float) -> bytes:
    guards, predictor = gw.guards, gw.predictor
    # the record budget before the body is read: the records declared by Record-Count, else one
    # record for a large body (or one of unknown length), so a key whose budget is spent costs
    # no reading or parsing; a small body is charged once validated, as before
    declared = _record_count(head.record_count, gw.policy.input.max_batch_rows)
    if declared is None:
        raise await refuse_counted(
            gw, metrics, p, 400, "predict", "the Record-Count header must be a whole number from "
            f"1 to {gw.policy.input.max_batch_rows}")
    length = head.content_length
    deposit = declared or (1 if length is None or not length.isdigit()
                           or int(length) > LARGE_BODY else 0)
    if deposit:
        d = await gw.guard(guards.charge_rows, p, deposit)
        if not d.allowed:
            msg, headers = too_many(d)
            metrics.guards.labels(guard="budget", decision="refused").inc()
            raise await refuse_counted(gw, metrics, p, 429, "predict", msg, headers=headers,
                                       rows=deposit)
    payload, body = await read_body_json(gw, metrics, p, "predict", head, stream)
    try:
        v = (await predictor.batcher.run_alone(parse_input, gw, payload)
             if len(body) > LARGE_BODY else parse_input(gw, payload))
        if declared and v.n != declared:
            raise InputProblem(f"the body holds {v.n} records; Record-Count said {declared}")
    except InputProblem as exc:
        metrics.guards.labels(guard="validation", decision="refused").inc()
        raise await refuse_counted(gw, metrics, p, 422, "predict", str(exc),
                                   audit_reason=exc.redacted, digest=gw.digest(body)) from None
    n = v.n
    if n > deposit:
        d = await gw.guard(guards.charge_rows, p, n - deposit)
        if not d.allowed:
            msg, headers = too_many(d)
            metrics.guards.labels(guard="budget", decision="refused").inc()
            raise await refuse_counted(gw, metrics, p, 429, "predict", msg, headers=headers,
                                       rows=n)
    if n <= gw.settings.predict_batch_max_rows:
        out = await predictor.batcher.submit(v)
    else:
        out = await predictor.batcher.run_alone(predictor.predict_large, v)
    bad = out.suspicious
    # the extraction detector sees every query, answered or not: records the screen refuses
    # count as far from the training data (an attacker's probes are; real applicants are not)
    newly, why = (False, {}) if out.encoded is None else await gw.guard(
        guards.observe, p, out.observed, out.encoded, out.proba, out.far | bad)
    rid = uuid.uuid4().hex
    if newly:
        metrics.guards.labels(guard="extraction", decision="flagged").inc()
        action = gw.policy.extraction.action
        await commit(gw, gw.entry(p, "extraction.flagged", 200, request_id=rid,
                                  response=action, **why))
        if action == "block":  # the request that tips the verdict is not answered either
            metrics.guards.labels(guard="extraction", decision="blocked").inc()
            raise await refuse_counted(gw, metrics, p, 403, "predict", BLOCKED, rows=n,
                                       digest=gw.digest(body))
    if bad.any():
        metrics.guards.labels(guard="screening", decision="suspicious").inc()
        if gw.policy.screening.action == "reject":
            raise await refuse_counted(
                gw, metrics, p, 422, "predict",
                f"{int(bad.sum())} record(s) look out of distribution or adversarial (first: row "
                f"{int(np.argmax(bad))}); nothing was answered", rows=n, digest=gw.digest(body))
    top = gw.decide(out.proba)  # the bank's decision, on the unrounded scores
    await commit(gw, gw.entry(p, "predict", 200, request_id=rid, rows=n, digest=gw.digest(body)))
    names = gw.class_names
    labels = [names[i] for i in top.tolist()]
    probs = None if gw.policy.output.mode == "label_only" else out.answer.tolist()
    metrics.rows.inc(n)
    metrics.requests_child("predict", "200").inc()
    metrics.latency_child("predict").observe(time.perf_counter() - t0)
    answer = {"request_id": rid, "classes": names, "labels": labels, "probabilities": probs}
    if n > 1000:  # a long serialisation: in the model thread too
        return await predictor.batcher.run_alone(_dumps, answer)
    return _dumps(answer)


def _record_count(header: str | None, most: int) -> int | None:
    """The records a request declares (0 when it declares none), None when malformed."""
    if header is None:
        return 0
    h = header.strip()
    return int(h) if h.isdigit() and len(h) <= 12 and 1 <= int(h) <= most else None


def _dumps(answer: dict[str, Any]) -> bytes:
    return json.dumps(answer, separators=(",", ":"), allow_nan=False).encode()


def parse_input(gw: Gateway, payload: Any) -> Valid:
    """The records of a predict body (one record, records, or a column batch), validated by
    one path (:class:`~finmlsec.gateway.validation.InputValidator`), within the batch limit."""
    max_rows = gw.policy.input.max_batch_rows
    if not isinstance(payload, dict):
        raise InputProblem("the body must be a JSON object with 'record', 'records' or "
                           "'columns' and 'data'")
    if len(payload) == 1 and "record" in payload:
        return gw.validator.records([payload["record"]])
    if len(payload) == 1 and "records" in payload:
        rows = payload["records"]
    elif len(payload) == 2 and "columns" in payload and "data" in payload:
        rows = payload["data"]
    else:
        raise InputProblem(f"unexpected fields {short(sorted(map(str, payload)))}; send "
                           "'record', 'records', or 'columns' and 'data'",
                           "unexpected fields; send 'record', 'records', or 'columns' and 'data'")
    if isinstance(rows, list) and len(rows) > max_rows:
        raise InputProblem(f"{len(rows)} records exceed the batch limit of {max_rows}")
    v = (gw.validator.records(rows) if "records" in payload
         else gw.validator.columns(payload["columns"], rows))
    if v.n == 0:
        raise InputProblem("no records to predict")
    return v


def build_router(gw: Gateway) -> APIRouter:
    router = APIRouter(tags=["predict"])

    @router.post(
        "/v1/predict",
        summary="Predict one record or a batch",
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": request_schema(gw)}}},
            "security": [{"HTTPBearer": []}],
            "parameters": [{"name": "Record-Count", "in": "header", "required": False,
                            "description": "records in the body, charged to the record budget "
                            "before the body is read",
                            "schema": {"type": "integer", "minimum": 1,
                                       "maximum": gw.policy.input.max_batch_rows}}]},
        responses={200: {"description": "Predictions",
                         "content": {"application/json": {"schema": RESPONSE_SCHEMA}}},
                   400: {"description": "Malformed JSON"}, 401: {"description": "No valid key"},
                   403: {"description": "Wrong role, or client blocked"},
                   413: {"description": "Payload too large"},
                   415: {"description": "Content-Type is not JSON"},
                   422: {"description": "Records do not satisfy the schema"},
                   429: {"description": "Rate limit, budget or concurrency exceeded"},
                   503: {"description": "The process answers its maximum of requests"}},
    )
    async def predict(request: Request) -> Response:
        body = await predict_answer(gw, request.app.state.metrics, Head.of(request),
                                    request.stream())
        return Response(content=body, status_code=200, media_type="application/json")

    return router


# -- the raw route ------------------------------------------------------------------------------
def lean_predict(gw: Gateway, metrics: GatewayMetrics) -> Callable[..., Awaitable[None]]:
    """The ASGI handler of the raw ``POST /v1/predict`` route (:func:`finmlsec.gateway.app.raw_route`):
    it reads the two headers it needs from the scope and the body from ``receive``, without a
    request object or FastAPI's dependency resolution (which cost more per request than the
    guards). It sends the same answers as the FastAPI route, because both call
    :func:`predict_answer` and render refusals and errors with
    :func:`~finmlsec.gateway.responses.error_response`; an unexpected error is raised to the
    server's error middleware (500)."""

    async def handle(scope: dict[str, Any], receive: Any, send: Any) -> None:
        found: dict[bytes, str] = {}
        for k, v in scope["headers"]:  # names are lower case in ASGI; the first one counts
            if k in _HEAD and k not in found:
                found[k] = v.decode("latin-1")
        client = scope.get("client")
        head = Head(found.get(b"authorization"), found.get(b"content-type"),
                    found.get(b"content-length"), found.get(b"record-count"),
                    client[0] if client else "unknown")
        try:
            body = await predict_answer(gw, metrics, head, _stream(receive))
            status, headers = 200, [(b"content-length", str(len(body)).encode()), JSON]
        except _Disconnected:
            return
        except Exception as exc:
            answer = error_response(exc)
            if answer is None:
                raise
            status, body, headers = answer
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return handle


_HEAD = frozenset({b"authorization", b"content-type", b"content-length", b"record-count"})


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
