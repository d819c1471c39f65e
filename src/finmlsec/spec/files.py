"""The YAML keys of a spec that name files, and reading a dotted key of a parsed spec: what a
scan bundles and hashes (``finmlsec.scan.bundle``) and a dossier lists (``finmlsec.report``).

Example:
    >>> lookup({"data": {"splits": {"train": "train.csv"}}}, "data.splits.train")
    'train.csv'
    >>> lookup({"data": {}}, "data.splits.test") is None
    True
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

#: The YAML keys of a spec that name files (relative to the spec, or absolute).
FILE_KEYS = ("model.path", "model.factory.path", "data.path", "data.schema",
             "data.splits.train", "data.splits.test", "data.splits.population")


def lookup(doc: dict[str, Any], key: str) -> Any:
    """The value at the dotted ``key`` of a parsed spec (None where a part is missing)."""
    node: Any = doc
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file, read in blocks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
