"""The software environment a scan ran in, recorded with the run.

A validation is reproducible only with the versions that produced its figures. So
:func:`environment` is captured by :func:`finmlsec.scan.start_scan` (stored in the run's options)
and again by every :func:`finmlsec.scan.run_scan` that runs units (a resume may happen on another
machine): the run's summary lists each distinct environment that ran units. The dossier shows
these, never the environment of whoever renders it later.

Example:
    >>> env = environment()
    >>> sorted(env) == ["packages", "platform", "python"] and "numpy" in env["packages"]
    True
"""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from typing import Any

#: The distributions a scan's figures depend on (None when not installed).
PACKAGES = ("finmlsec", "numpy", "scipy", "pandas", "scikit-learn", "skops", "onnxruntime",
            "torch", "xgboost", "lightgbm", "pydantic", "SQLAlchemy", "matplotlib", "Jinja2",
            "opacus", "dask", "distributed")


def environment() -> dict[str, Any]:
    """Python, platform and the versions of :data:`PACKAGES` in this process."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"python": sys.version.split()[0], "platform": platform.platform(),
            "packages": versions}


def merge(seen: list[dict[str, Any]] | None, current: dict[str, Any]) -> list[dict[str, Any]]:
    """``seen`` with ``current`` appended unless it is already there (order kept)."""
    out = list(seen or [])
    if current not in out:
        out.append(current)
    return out
