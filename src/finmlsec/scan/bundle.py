"""A scan's inputs as one frozen, self-describing payload: the spec and every file it names.

At planning time :func:`make_bundle` reads the spec's text and the files its ``model:`` and
``data:`` sections point at (the model, the factory template, the CSV, the feature schema, the
splits) into a zip archive: a ``manifest.json`` (format, the spec's original path, for every
file the YAML key it fills, its archive name and SHA-256) beside ``spec.yaml`` and the files. The
store keeps the archive with the run (keyed by its SHA-256), so a scan resumes and runs on workers
that never see the spec's directory: a Dask worker receives the archive once (the executor
scatters it) and :func:`open_bundle` unpacks it into a private directory of that process and
loads the scenario from there with the planner's trust flag. Nothing in an archive is unpickled:
the manifest is JSON, the spec YAML (safe loader), and each file is loaded by the same loader, with
the same rules, as on the planner (skops' trusted types, ONNX, torch ``weights_only``; a pickle
only when the spec or ``--trust-pickle`` trusted it).

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "spec.yaml").write_text('''
    ... organisations: [{id: bank}]
    ... roles: {training_data_provider: bank, system_user: bank, model_generator: bank,
    ...         model_operator: bank}
    ... data: {dataset: german_credit, schema: schema.yaml}
    ... ''')
    >>> from finmlsec.datasets import load
    >>> import yaml
    >>> _ = (d / "schema.yaml").write_text(yaml.safe_dump(
    ...     load("german_credit").schema.model_dump(mode="json")))
    >>> b = make_bundle(d / "spec.yaml")
    >>> sorted(manifest(b)["files"])
    ['data.schema']
    >>> (d / "schema.yaml").unlink()
    >>> open_bundle(b).data.schema.endswith("schema.yaml")
    True
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import yaml

from finmlsec.errors import ConfigError, SpecError
from finmlsec.spec.files import FILE_KEYS, lookup, sha256_file

FORMAT = "finmlsec-bundle/1"

#: The most bytes of files the store keeps with a run; a scan of larger inputs runs from the
#: spec's files (on Dask, every worker must then see them at the same path).
MAX_BYTES = 512 * 2**20

_STAMP = (2020, 1, 1, 0, 0, 0)  # fixed member times: the same inputs give the same archive


def digest(payload: bytes) -> str:
    """The SHA-256 of an archive (its id in the store)."""
    return hashlib.sha256(payload).hexdigest()


def _set(doc: dict[str, Any], key: str, value: str) -> None:
    *parents, last = key.split(".")
    node = doc
    for part in parents:
        node = node[part]
    node[last] = value


def _referenced(spec: Any) -> dict[str, str]:
    """The spec's file keys that are set, with the path as written."""
    doc = spec.model_dump(mode="json", exclude_none=True)
    if (doc.get("model") or {}).get("format") == "remote":
        doc["model"].pop("path", None)
    return {k: str(v) for k in FILE_KEYS if isinstance(v := lookup(doc, k), str)}


def _sources(spec: Any) -> dict[str, Path]:
    base = Path(spec.source_dir)
    return {key: Path(raw) if Path(raw).is_absolute() else base / raw
            for key, raw in _referenced(spec).items()}


def input_hashes(spec_path: str | Path) -> dict[str, str | None]:
    """The SHA-256 of every file the spec at ``spec_path`` names, by its YAML key (``model.path``,
    ``data.splits.train``, ...): what a scan measured, recorded with its run so that what is
    served later can be checked against it (``finmlsec serve --from-scan``). None for a path that
    is a directory (Parquet data at scale, a model directory) or missing; the spec's own text
    under ``spec``, as in :func:`hashes` (which gives the same from an archive without reading
    the files again)."""
    from finmlsec.spec import load_spec

    path = Path(spec_path).resolve()
    return {"spec": sha256_file(path),
            **{key: sha256_file(src) if src.is_file() else None
               for key, src in sorted(_sources(load_spec(path)).items())}}


def make_bundle(spec_path: str | Path) -> bytes | None:
    """The archive of the spec at ``spec_path`` and the files it names (see the module
    docstring); None when the files exceed :data:`MAX_BYTES` or ``data.path`` is a directory (of
    Parquet files; the scan then reads the spec's files where they are)."""
    from finmlsec.spec import load_spec

    path = Path(spec_path).resolve()
    spec = load_spec(path)
    base = Path(spec.source_dir)
    written = _referenced(spec)
    sources = {key: Path(raw) if Path(raw).is_absolute() else base / raw
               for key, raw in written.items()}
    try:
        if any(src.is_dir() for src in sources.values()):
            return None  # a directory of Parquet files (data at scale): read where it is
        if sum(src.stat().st_size for src in sources.values()) > MAX_BYTES:
            return None
    except OSError as exc:
        raise SpecError(f"cannot read {exc.filename!r} ({exc.strerror}); fix the path",
                        str(path)) from None
    files: dict[str, dict[str, str]] = {}
    blobs: list[tuple[str, bytes]] = []
    for i, (key, src) in enumerate(sorted(sources.items())):
        blob = src.read_bytes()
        name = f"files/{i}/{re.sub(r'[^A-Za-z0-9_.-]', '_', src.name) or 'file'}"
        files[key] = {"name": name, "sha256": digest(blob), "written": written[key]}
        blobs.append((name, blob))
    meta = {"format": FORMAT, "spec_path": str(path), "spec_name": path.name, "files": files}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, blob in [("manifest.json", json.dumps(meta, sort_keys=True).encode()),
                           ("spec.yaml", path.read_bytes()), *blobs]:
            z.writestr(zipfile.ZipInfo(name, date_time=_STAMP), blob)
    return out.getvalue()


def manifest(payload: bytes) -> dict[str, Any]:
    """The manifest of an archive (a ConfigError for anything that is not one)."""
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as z:
            meta = json.loads(z.read("manifest.json"))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ConfigError(f"not a finmlsec scan bundle ({exc})") from None
    if meta.get("format") != FORMAT:
        raise ConfigError(f"unknown scan bundle format {meta.get('format')!r}; expected {FORMAT}")
    return dict(meta)


_DIRS: dict[str, Path] = {}


def hashes(payload: bytes) -> dict[str, str]:
    """The SHA-256 of each file the archive holds, by the spec key that named it (the spec's
    own text under ``spec``)."""
    meta = manifest(payload)
    with zipfile.ZipFile(io.BytesIO(payload)) as z:
        spec = digest(z.read("spec.yaml"))
    return {"spec": spec, **{k: v["sha256"] for k, v in meta["files"].items()}}


def unpack(payload: bytes) -> Path:
    """Unpack the archive into a directory private to this process (once per archive); return
    the path of its spec. Each file is checked against its SHA-256 and written under the
    archive's own name, never a path taken from outside ``files/``."""
    key = digest(payload)
    if key in _DIRS and _DIRS[key].is_dir():
        return _DIRS[key] / "spec.yaml"
    meta = manifest(payload)
    root = Path(tempfile.mkdtemp(prefix=f"finmlsec-bundle-{key[:12]}-"))
    with zipfile.ZipFile(io.BytesIO(payload)) as z:
        doc = yaml.safe_load(z.read("spec.yaml").decode("utf-8"))
        for yaml_key, entry in meta["files"].items():
            if yaml_key not in FILE_KEYS:
                raise ConfigError(f"scan bundle names an unknown file key {yaml_key!r}")
            blob = z.read(entry["name"])
            if digest(blob) != entry["sha256"]:
                raise ConfigError(f"scan bundle file {entry['name']!r} is corrupt (SHA-256)")
            # files/INDEX/NAME: the original file name (a CSV's name names its data set)
            index, name = (entry["name"].split("/") + ["", ""])[1:3]
            if not index.isdigit() or not re.fullmatch(r"[A-Za-z0-9_.-]+", name) \
                    or name in (".", ".."):
                raise ConfigError(f"scan bundle names a bad file {entry['name']!r}")
            local = root / "files" / index / name
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(blob)
            _set(doc, yaml_key, str(local))
    (root / "spec.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    _DIRS[key] = root
    return root / "spec.yaml"


def open_bundle(payload: bytes) -> Any:
    """The :class:`~finmlsec.spec.SystemSpec` of an archive, its files unpacked (see
    :func:`unpack`)."""
    from finmlsec.spec import load_spec

    return load_spec(unpack(payload))


def forget() -> None:
    """Remove this process's unpacked archives (tests; a long-lived worker between scans)."""
    for root in _DIRS.values():
        shutil.rmtree(root, ignore_errors=True)
    _DIRS.clear()
