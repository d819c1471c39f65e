"""Where the vendored data files live (inside the installed package, read offline)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from finmlsec.errors import DataError


def data_file(name: str) -> Path:
    """Path of a file shipped in ``finmlsec/datasets/data/``; a clear error if it is missing."""
    path = Path(str(resources.files("finmlsec.datasets") / "data" / name))
    if not path.is_file():
        raise DataError(
            f"the vendored data file {name!r} is missing from {path.parent}; reinstall finmlsec "
            "(the file is part of the package and is never downloaded)"
        )
    return path
