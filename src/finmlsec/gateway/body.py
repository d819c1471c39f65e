"""Reading a JSON request body at the boundary: media type, size, then strict parsing.

Before a byte of the body is read, the ``Content-Type`` must be JSON (415 otherwise) and a
declared ``Content-Length`` within the policy's ``max_body_bytes`` (413); while reading, the
running size is checked again (a body without a length). Parsing refuses with 400 what
``json.loads`` alone would let through or fail on with a server error: an object with the same
key twice (the last one would silently win), nesting deeper than the parser's recursion limit
(``RecursionError``), and bytes that are not UTF-8.

Example:
    >>> parse(b'{"record": {"age": 30}}')
    {'record': {'age': 30}}
    >>> parse(b'{"a": 1, "a": 2}')
    Traceback (most recent call last):
    ...
    finmlsec.gateway.body.BadBody: the body is not valid JSON: the key 'a' appears twice in one object
    >>> parse(b"[" * 100_000)
    Traceback (most recent call last):
    ...
    finmlsec.gateway.body.BadBody: the body is not valid JSON: it is nested too deeply
    >>> json_media_type("application/json; charset=utf-8"), json_media_type("text/plain")
    (True, False)
"""

from __future__ import annotations

import json
from typing import Any


class BadBody(ValueError):
    """The body is not acceptable JSON (HTTP 400)."""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise BadBody(f"the body is not valid JSON: the key {dup[:40]!r} appears twice in one "
                      "object")
    return out


_DECODER = json.JSONDecoder(object_pairs_hook=_pairs)


def parse(body: bytes) -> Any:
    """The JSON value of ``body``, or :class:`BadBody` (see the module docstring)."""
    try:
        text = body.decode("utf-8")
        return _DECODER.decode(text)
    except BadBody:
        raise
    except RecursionError:
        raise BadBody("the body is not valid JSON: it is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadBody(f"the body is not valid JSON ({exc.__class__.__name__}: "
                      f"{str(exc)[:120]})") from None


def json_media_type(content_type: str | None) -> bool:
    """Whether a ``Content-Type`` header says JSON (``application/json``, parameters allowed,
    or a ``+json`` structured syntax)."""
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/")
                                           and media.endswith("+json"))
