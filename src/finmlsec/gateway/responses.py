"""The one mapping from an exception to the gateway's HTTP answer, used by the app's exception
handlers and by the raw ``POST /v1/predict`` route alike.

- a refusal (``HTTPException``): its status, ``{"detail": ...}`` and headers;
- a request FastAPI could not bind (``RequestValidationError``): 422 with the field errors
  (location, message, type; never the value received);
- the database or counter store unavailable (:class:`StoreError`): 503 with ``Retry-After``,
  saying which store, never its address (the cause goes to the server log);
- another finmlsec error: 422 with its message;
- anything else: None (the server's 500).

Example:
    >>> from finmlsec.errors import StoreError
    >>> status, body, headers = error_response(StoreError("redis at 10.0.0.5:6379 refused"))
    >>> status, body, headers[0]
    (503, b'{"detail":"storage unavailable; retry shortly"}', (b'retry-after', b'1'))
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from finmlsec.errors import FinmlsecError, StoreError

log = logging.getLogger("finmlsec.gateway")

JSON = (b"content-type", b"application/json")
Headers = list[tuple[bytes, bytes]]


def json_body(content: Any) -> bytes:
    """Compact JSON of ``content`` (no NaN)."""
    return json.dumps(content, ensure_ascii=False, allow_nan=False,
                      separators=(",", ":")).encode("utf-8")


def error_response(exc: BaseException) -> tuple[int, bytes, Headers] | None:
    """Status, body and headers (lower-case names, with content type and length) of the answer
    to ``exc``, or None for an unexpected error (see the module docstring)."""
    extra: dict[str, str] = {}
    content: dict[str, Any]
    if isinstance(exc, HTTPException):
        status, content = exc.status_code, {"detail": exc.detail}
        extra = dict(exc.headers or {})
    elif isinstance(exc, RequestValidationError):  # as FastAPI documents it (HTTPValidationError)
        status = 422
        content = {"detail": [{"loc": [str(x) for x in e.get("loc", ())],
                               "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
                              for e in exc.errors()]}
    elif isinstance(exc, StoreError):
        log.warning("storage unavailable: %s", exc)
        status, content = 503, {"detail": "storage unavailable; retry shortly"}
        extra = {"Retry-After": "1"}
    elif isinstance(exc, FinmlsecError):
        status, content = 422, {"detail": str(exc)}
    else:
        return None
    body = json_body(content)
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]
    return status, body, headers + [(b"content-length", str(len(body)).encode()), JSON]
