"""``POST /v1/predict``: one record, a list of records, or a column-oriented batch (flows D-F).

Guards in order: API key and role, block/throttle after extraction detection, request rate limit,
payload size, schema validation, record budget, input screening, then the model (micro-batched),
the output modification, PRADA, and the audit entry, committed before the answer is sent.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response

from finmlsec.gateway.deps import authorise, commit, json_response, refuse, too_many
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
    limit = gw.policy.input.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise await refuse(gw, request, p, 413, action,
                           f"payload of {declared} bytes exceeds the limit of {limit} bytes; "
                           "send smaller batches")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise await refuse(gw, request, p, 413, action,
                               f"payload exceeds the limit of {limit} bytes; send smaller batches")
        chunks.append(chunk)
    body = b"".join(chunks)
    try:
        return json.loads(body), body
    except (ValueError, UnicodeDecodeError) as exc:
        raise await refuse(gw, request, p, 400, action,
                           f"the body is not valid JSON ({exc.__class__.__name__}: "
                           f"{str(exc)[:120]})") from None


def build_router(gw: Gateway) -> APIRouter:
    router = APIRouter(tags=["predict"])
    roles = ("system_user",)

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
        t0 = time.perf_counter()
        p: Principal = await authorise(gw, request, "predict", roles)
        metrics = request.app.state.metrics
        blocked = gw.check_block(p)
        if blocked == "block":
            metrics.guards.labels(guard="extraction", decision="blocked").inc()
            raise await refuse(gw, request, p, 403, "predict",
                               "this client is blocked: its queries look like model extraction; "
                               "contact the operator")
        if blocked is not None and not isinstance(blocked, str):
            msg, headers = too_many(blocked)
            metrics.guards.labels(guard="extraction", decision="throttled").inc()
            raise await refuse(gw, request, p, 429, "predict", "throttled after extraction "
                               f"detection; {msg}", headers=headers)
        d = gw.charge_request(p)
        if not d.allowed:
            msg, headers = too_many(d)
            metrics.guards.labels(guard="rate_limit", decision="refused").inc()
            raise await refuse(gw, request, p, 429, "predict", msg, headers=headers)
        payload, body = await read_json(gw, request, p, "predict")
        records: list[dict[str, Any]] | None = None
        X: Any = None
        try:
            if not isinstance(payload, dict):
                raise InputProblem("the body must be a JSON object with 'record', 'records' or "
                                   "'columns' and 'data'")
            keys = set(payload)
            if keys == {"record"}:
                records = gw.validator.validate([payload["record"]])
            elif keys == {"records"}:
                rows = payload["records"]
                if isinstance(rows, list) and len(rows) > gw.policy.input.max_batch_rows:
                    raise InputProblem(f"{len(rows)} records exceed the batch limit of "
                                       f"{gw.policy.input.max_batch_rows}")
                records = gw.validator.validate(rows)
            elif keys == {"columns", "data"}:
                data = payload["data"]
                if isinstance(data, list) and len(data) > gw.policy.input.max_batch_rows:
                    raise InputProblem(f"{len(data)} rows exceed the batch limit of "
                                       f"{gw.policy.input.max_batch_rows}")
                X = gw.validator.validate_columns(payload["columns"], data)
            else:
                raise InputProblem(f"unexpected fields {sorted(keys)}; send 'record', 'records', "
                                   "or 'columns' and 'data'")
            n = len(records) if records is not None else len(X)
            if n == 0:
                raise InputProblem("no records to predict")
            if n > gw.policy.input.max_batch_rows:
                raise InputProblem(f"{n} records exceed the batch limit of "
                                   f"{gw.policy.input.max_batch_rows}")
        except InputProblem as exc:
            metrics.guards.labels(guard="validation", decision="refused").inc()
            raise await refuse(gw, request, p, 422, "predict", str(exc),
                               digest=gw.digest(body)) from None
        d = gw.charge_rows(p, n)
        if not d.allowed:
            msg, headers = too_many(d)
            metrics.guards.labels(guard="budget", decision="refused").inc()
            raise await refuse(gw, request, p, 429, "predict", msg, headers=headers, rows=n)
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
                raise await refuse(gw, request, p, 422, "predict",
                                   f"{int(bad.sum())} record(s) look out of distribution or "
                                   f"adversarial (first: row {int(np.argmax(bad))}); nothing was "
                                   "answered", rows=n, digest=gw.digest(body))
        top = np.argmax(parts["proba"], axis=1)
        out_p = parts["answer"]
        newly, why = gw.observe(p, parts)
        rid = uuid.uuid4().hex
        if newly:
            metrics.guards.labels(guard="extraction", decision="flagged").inc()
            await commit(gw, gw.entry(p, "extraction.flagged", 200, request_id=rid,
                                      response=gw.policy.extraction.action, **why))
        await commit(gw, gw.entry(p, "predict", 200, request_id=rid, rows=n,
                                  digest=gw.digest(body)))
        labels = [gw.class_names[i] for i in top]
        probs = None if gw.policy.output.mode == "label_only" else out_p.tolist()
        metrics.rows.inc(n)
        metrics.requests.labels(endpoint="predict", status="200").inc()
        metrics.latency.labels(endpoint="predict").observe(time.perf_counter() - t0)
        return json_response({"request_id": rid, "classes": gw.class_names, "labels": labels,
                              "probabilities": probs})

    return router
