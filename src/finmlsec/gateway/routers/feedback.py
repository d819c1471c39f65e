"""``POST /v1/feedback``: a system user reports a false prediction (flow G). The report is
screened, quarantined and acknowledged only once it and its audit entry are committed; nothing
reaches training data before an operator approves it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from finmlsec.gateway.audit_verify import feedback_digest
from finmlsec.gateway.deps import commit, json_response, refuse, require, too_many
from finmlsec.gateway.feedback import feedback_row
from finmlsec.gateway.routers.predict import read_json
from finmlsec.gateway.service import Gateway, Principal
from finmlsec.gateway.validation import InputProblem, record_json_schema


def build_router(gw: Gateway) -> APIRouter:
    router = APIRouter(tags=["feedback"])
    system_user = require("feedback", "system_user")
    body_schema = {
        "type": "object",
        "properties": {
            "record": record_json_schema(gw.schema),
            "label": {"type": "string", "enum": gw.class_names,
                      "description": "the class the reporter says is right"},
            "note": {"type": "string", "maxLength": 500},
        },
        "required": ["record", "label"],
        "additionalProperties": False,
    }

    @router.post(
        "/v1/feedback", status_code=202, summary="Report a false prediction (quarantined)",
        openapi_extra={"requestBody": {"required": True,
                                       "content": {"application/json": {"schema": body_schema}}}},
        responses={202: {"description": "Accepted into quarantine"},
                   400: {"description": "Malformed JSON"}, 401: {"description": "No valid key"},
                   403: {"description": "Role or organisation may not send feedback"},
                   413: {"description": "Payload too large"},
                   415: {"description": "Content-Type is not JSON"}, 422: {"description": "Invalid"},
                   429: {"description": "Feedback budget exceeded"}},
    )
    async def feedback(request: Request, p: Principal = Depends(system_user)) -> Response:
        pol = gw.policy.feedback
        allowed = gw.feedback_organisations
        if not pol.enabled or (allowed is not None and p.org not in allowed):
            raise await refuse(gw, request, p, 403, "feedback",
                               f"organisation {p.org!r} may not submit false-prediction data")
        if await gw.guard(gw.guards.check_block, p) is not None:  # no side door for a client blocked on predict
            raise await refuse(gw, request, p, 403, "feedback", "this client is blocked or "
                               "throttled after extraction detection; contact the operator")
        for d in (await gw.guard(gw.guards.charge_feedback, p),
                  await gw.guard(gw.guards.charge_rows, p, 1)):
            if not d.allowed:  # a report queries the model: it counts against the row budget too
                msg, headers = too_many(d)
                raise await refuse(gw, request, p, 429, "feedback", msg, headers=headers)
        payload, body = await read_json(gw, request, p, "feedback")
        try:
            if not isinstance(payload, dict) or not {"record", "label"} <= set(payload) or not set(
                payload) <= {"record", "label", "note"}:
                raise InputProblem("the body must be an object with 'record', 'label' and "
                                   "optionally 'note'")
            label, note = payload["label"], payload.get("note")
            if not isinstance(label, str) or label not in gw.class_names:
                raise InputProblem(f"'label' must be one of {gw.class_names}; got {label!r}",
                                   f"'label' must be one of {gw.class_names}")
            if note is not None and (not isinstance(note, str) or len(note) > 500):
                raise InputProblem("'note' must be a string of at most 500 characters")
            valid = gw.validator.records([payload["record"]])
        except InputProblem as exc:
            raise await refuse(gw, request, p, 422, "feedback", str(exc),
                               audit_reason=exc.redacted, digest=gw.digest(body)) from None
        out = await gw.predictor.batcher.submit(valid)
        P = out.proba
        top = int(gw.decide(P[:1])[0])  # the model's decision (at the bank's cut-off)
        flags: list[str] = []
        if gw.class_names[top] != label and P[0, top] >= pol.contradiction_confidence:
            flags.append("contradicts_model")
        if out.suspicious[0]:
            flags.append("out_of_distribution")
        # the detector sees every answer the model gives, a report's included
        newly, why = (False, {}) if out.encoded is None else await gw.guard(
            gw.guards.observe, p, out.observed, out.encoded, out.proba, out.far)
        if newly:
            await commit(gw, gw.entry(p, "extraction.flagged", 200, via="feedback",
                                      response=gw.policy.extraction.action, **why))
        row = feedback_row(key_id=p.key_id, org=p.org, record=valid.record(0), label=label,
                           model_label=gw.class_names[top], model_confidence=float(P[0, top]),
                           flags=flags, note=note)
        detail: dict[str, Any] = {"feedback_id": row["id"], "flags": flags,
                                  "digest": gw.digest(body), "row": feedback_digest(row)}
        await commit(gw, gw.entry(p, "feedback", 202, **detail), feedback=row)
        request.app.state.metrics.requests.labels(endpoint="feedback", status="202").inc()
        # the screening flags stay with the operator: "contradicts_model" would tell the
        # reporter whether the model is confident about the record
        return json_response({"id": row["id"], "status": "quarantined"}, 202)

    return router
