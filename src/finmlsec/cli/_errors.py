"""How the command line reports errors (one line each) and names its parameters in help.

- :func:`one_line`: a message on one line, without a library's "Value error," prefix or its
  "Background on this error at: https://..." link.
- :func:`usage_line`: a bad option, argument or choice (click's usage errors) as one line naming
  the command and where its help is.
- :func:`internal_error`: an unexpected exception: the traceback goes to a log file (mode 0600;
  directory ``FINMLSEC_LOG_DIR`` or the system's temporary directory) and the line names it.
- :func:`readable_metavars`: ``--db DB`` and ``--profile [quick|standard|thorough]`` in help,
  rather than ``<str>`` and ``<list[str]>``.
"""

from __future__ import annotations

import os
import re
import tempfile
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import finmlsec

EXIT_USER = 2
EXIT_INTERNAL = 4
#: an integrity check failed: an audit log or a dossier does not verify (tampered, or checked
#: with another key). Not a user error: CI and monitors must tell it apart from a typo.
EXIT_TAMPERED = 5

_NOISE = (
    re.compile(r"\(Background on this error at: \S+\)"),
    re.compile(r"\bValue error, "),
)


def one_line(message: str) -> str:
    """``message`` on one line: line breaks become spaces, library noise is dropped."""
    for pattern in _NOISE:
        message = pattern.sub("", message)
    return " ".join(message.split())


def usage_line(exc: Any) -> str:
    """A click usage error (``exc``) as ``error: finmlsec scan: invalid value ...; see ...``."""
    message = one_line(exc.format_message()).rstrip(".")
    message = message[:1].lower() + message[1:]
    ctx = getattr(exc, "ctx", None)
    if ctx is None:
        return f"error: {message}"
    path = ctx.command_path
    return f"error: {path}: {message} (see `{path} --help`)"


def internal_error(exc: BaseException) -> str:
    """Write ``exc``'s traceback to a new log file; the one line to print about it."""
    log_dir = Path(os.environ.get("FINMLSEC_LOG_DIR") or tempfile.gettempdir())
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f"finmlsec-error-{stamp}-", suffix=".log",
                                    dir=log_dir)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(f"finmlsec {finmlsec.__version__}\n")
            fh.write("".join(traceback.format_exception(exc)))
        where = f"the traceback is in {name}"
    except OSError as log_exc:
        where = f"the traceback could not be written ({log_exc.strerror})"
    return (f"internal error: {type(exc).__name__}: {one_line(str(exc))[:200]}; this is a bug in "
            f"finmlsec {finmlsec.__version__}; {where}; please report it with that file")


def readable_metavars(command: Any) -> None:
    """Give every option and argument of ``command`` (recursively) a metavar read by people:
    an option's choices or its name in capitals; an argument's name, then its choices if any."""
    for param in getattr(command, "params", []):
        if getattr(param, "is_flag", False) or getattr(param, "count", False):
            continue
        desc = getattr(param, "type_descriptor", None)
        choices = desc.choices if desc is not None and desc.is_choice else None
        shown = "[" + "|".join(str(getattr(c, "value", c)) for c in choices) + "]" if choices else None
        if getattr(param, "param_type_name", "") == "argument":
            param.metavar = param.metavar or (param.name or "value").upper()
            param.display_type_rich = lambda ctx, shown=shown: shown
        elif param.metavar is None:
            param.metavar = shown or (param.name or "value").upper()
    for sub in getattr(command, "commands", {}).values():
        readable_metavars(sub)
