"""What keeps the audit log honest against whoever administers its database: a secret key kept
outside the database, and an append-only anchor file of chain heads.

**The key.** With a key, entry ``n``'s hash is ``HMAC-SHA256(key, hash_{n-1} || body_n)``: nobody
without the key can recompute the chain after editing, inserting or removing entries, however
much of the database they control. The key is 32 random bytes, read (in this order) from
``--audit-key-file`` / ``FINMLSEC_AUDIT_KEY_FILE`` (a file holding 64 hex digits), from
``FINMLSEC_AUDIT_KEY`` (64 hex digits), or, for a SQLite database ``DIR/NAME.db``, from
``DIR/NAME.db.audit-key`` (``finmlsec serve`` creates it, mode 0600, when it is missing and no key
was given). Keep the key where the database administrator cannot read it (a secrets manager, the
application host's disk); ``finmlsec audit verify`` needs the same key. Never put it in the
database or in a log.

**The anchor.** Truncating the newest entries and setting the head back to an older, genuine
entry leaves a chain that verifies under the key. The writer therefore appends the head
``(seq, hash)`` (with an HMAC over both) to an append-only file outside the database at intervals
(``anchor_seconds``, and on shutdown); verification checks every anchored head is still in the
chain and no stored head is older than the newest anchor. Several server processes may append to
one file (lines are written with ``O_APPEND`` in one ``write``) or each to their own; pass every
file to ``audit verify``. Default for SQLite ``DIR/NAME.db``: ``DIR/NAME.db.audit-anchor``. For
full protection keep the file on another host or a write-once volume (``chattr +a``), or ship it
to a log sink.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> k = load_key(None, default=d / "gw.db.audit-key", create=True)
    >>> len(k)
    32
    >>> a = Anchor(d / "gw.db.audit-anchor", k)
    >>> a.append(3, "ab" * 32)
    >>> [(x.seq, x.ok) for x in read_anchors(d / "gw.db.audit-anchor", k)]
    [(3, True)]
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from finmlsec.errors import ConfigError
from finmlsec.store.gateway import now_iso

KEY_ENV = "FINMLSEC_AUDIT_KEY"
KEY_FILE_ENV = "FINMLSEC_AUDIT_KEY_FILE"
ANCHOR_ENV = "FINMLSEC_AUDIT_ANCHOR"


def sqlite_path(db_url: str) -> Path | None:
    """The file of a SQLite URL (None for memory or another database)."""
    if not db_url.startswith("sqlite:///") or db_url in ("sqlite:///:memory:",):
        return None
    return Path(db_url[len("sqlite:///"):].split("?", 1)[0])


def default_key_path(db_url: str) -> Path | None:
    p = sqlite_path(db_url)
    return None if p is None else p.with_name(p.name + ".audit-key")


def default_anchor_path(db_url: str) -> Path | None:
    p = sqlite_path(db_url)
    return None if p is None else p.with_name(p.name + ".audit-anchor")


def _parse(text: str, where: str) -> bytes:
    v = text.strip()
    try:
        key = bytes.fromhex(v)
    except ValueError:
        raise ConfigError(f"the audit key in {where} is not hexadecimal; it must be 64 hex "
                          "digits (32 random bytes), e.g. from 'python -c \"import secrets; "
                          "print(secrets.token_hex(32))\"'") from None
    if len(key) < 32:
        raise ConfigError(f"the audit key in {where} has {len(key)} bytes; at least 32 are "
                          "needed (64 hex digits)")
    return key


def load_key(path: str | Path | None, *, default: Path | None = None,
             create: bool = False) -> bytes | None:
    """The audit key: from ``path``, ``$FINMLSEC_AUDIT_KEY_FILE``, ``$FINMLSEC_AUDIT_KEY``, else
    ``default`` (created with mode 0600 when ``create`` and missing); None when there is none."""
    path = path or os.environ.get(KEY_FILE_ENV) or None
    if path is None and os.environ.get(KEY_ENV):
        return _parse(os.environ[KEY_ENV], f"${KEY_ENV}")
    p = Path(path) if path is not None else default
    if p is None:
        return None
    if not p.exists():
        if path is not None:
            raise ConfigError(f"the audit key file {str(p)!r} does not exist")
        if not create:
            return None
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
    try:
        return _parse(p.read_text(encoding="ascii"), repr(str(p)))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the audit key file {str(p)!r}: {exc}") from None


def fingerprint(key: bytes | None) -> str | None:
    """A short public name of a key (to say which key a log needs, never the key)."""
    return None if key is None else hashlib.sha256(b"finmlsec-audit-key" + key).hexdigest()[:16]


def anchor_mac(key: bytes | None, seq: int, head: str) -> str | None:
    if key is None:
        return None
    return hmac.new(key, f"anchor:{seq}:{head}".encode("ascii"), hashlib.sha256).hexdigest()


class Anchor:
    """Appends chain heads to an append-only file (one JSON line each, fsynced)."""

    def __init__(self, path: str | Path, key: bytes | None) -> None:
        self.path = Path(path)
        self.key = key
        self.last_seq = -1
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd: int | None = self._open()
        except OSError as exc:
            raise ConfigError(f"cannot open the audit anchor file {str(self.path)!r}: "
                              f"{exc.strerror}") from None

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def append(self, seq: int, head: str) -> None:
        if seq <= self.last_seq:
            return
        line = {"seq": seq, "hash": head, "ts": now_iso(), "mac": anchor_mac(self.key, seq, head)}
        if self._fd is None:  # appended after close (a writer used again): open anew, never
            self._fd = self._open()  # write to a closed descriptor that another file now holds
        os.write(self._fd, (json.dumps(line, sort_keys=True) + "\n").encode("ascii"))
        os.fsync(self._fd)
        self.last_seq = seq

    def close(self) -> None:
        """Close the file once (closing a descriptor twice could close another file's)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


@dataclass(frozen=True)
class AnchorLine:
    seq: int
    hash: str
    ts: str
    ok: bool  # its MAC verifies (always True without a key)
    where: str


def read_anchors(path: str | Path, key: bytes | None) -> list[AnchorLine]:
    """The anchored heads of ``path``; a line that does not parse is one that is not ``ok``."""
    p = Path(path)
    try:
        text = p.read_text(encoding="ascii", errors="replace")
    except OSError as exc:
        raise ConfigError(f"cannot read the audit anchor file {str(p)!r}: {exc.strerror}") from None
    out = []
    lines = text.splitlines()
    if lines and not text.endswith("\n"):
        lines.pop()  # a write torn by a crash: that head was never acknowledged as anchored
    for i, raw in enumerate(lines, 1):
        where = f"{p}:{i}"
        try:
            d = json.loads(raw)
            seq, head, ts = int(d["seq"]), str(d["hash"]), str(d.get("ts", ""))
        except (ValueError, KeyError, TypeError):
            out.append(AnchorLine(-1, "", "", False, where))
            continue
        ok = key is None or hmac.compare_digest(str(d.get("mac")), anchor_mac(key, seq, head) or "")
        out.append(AnchorLine(seq, head, ts, ok, where))
    return out
