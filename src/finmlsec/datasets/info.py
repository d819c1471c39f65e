"""What a dataset is, as plain data: size, classes, schema, provenance (for the CLI and reports).

Example:
    >>> from finmlsec.datasets import load
    >>> from finmlsec.datasets.info import describe, loader_params
    >>> loader_params("card_fraud")
    {'n_rows': 50000, 'seed': 0, 'fraud_rate': 0.002}
    >>> d = describe(load("german_credit"))
    >>> d["rows"], d["class_counts"], d["schema"]["features"][12]["name"]
    (1000, {'bad': 300, 'good': 700}, 'age')
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import yaml

from finmlsec.datasets.base import DATASETS, Dataset
from finmlsec.errors import ConfigError


def loader_params(name: str) -> dict[str, Any]:
    """The keyword parameters of a registered loader and their defaults."""
    sig = inspect.signature(DATASETS.get(name))
    return {
        p.name: (None if p.default is inspect.Parameter.empty else p.default)
        for p in sig.parameters.values()
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    }


def parse_params(name: str, pairs: Sequence[str]) -> dict[str, Any]:
    """``["n_rows=5000", "seed=1"]`` -> ``{"n_rows": 5000, "seed": 1}``, checked against the
    loader's parameters (values are read as YAML scalars: ints, floats, strings)."""
    known = loader_params(name)
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                f"a dataset parameter must look like KEY=VALUE (e.g. n_rows=5000). Got {pair!r} "
                "instead."
            )
        if key not in known:
            listed = ", ".join(known) or "(none)"
            raise ConfigError(
                f"dataset {name!r} has no parameter {key!r}; its parameters are: {listed}"
            )
        try:
            out[key] = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            out[key] = raw
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return None


def describe(ds: Dataset, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """A JSON-ready summary: name, kind, task, rows, input shape, classes and their counts,
    description, source, license, citation, loader parameters, schema (or None)."""
    counts = np.bincount(np.asarray(ds.y, dtype=np.int64), minlength=len(ds.classes))
    if isinstance(ds.X, pd.DataFrame | np.ndarray):
        shape = [int(n) for n in ds.X.shape]
    else:
        shape = [len(ds.X)]
    scalars = {k: _jsonable(v) for k, v in ds.extra.items()}
    return {
        "name": ds.name,
        "kind": ds.kind,
        "task": ds.task,
        "rows": len(ds),
        "shape": shape,
        "classes": list(ds.classes),
        "class_counts": {c: int(n) for c, n in zip(ds.classes, counts, strict=True)},
        "positive_rate": round(float(counts[1] / max(1, counts.sum())), 6)
        if len(ds.classes) == 2
        else None,
        "description": ds.description,
        "source": ds.source,
        "license": ds.license,
        "citation": ds.citation,
        "params": _jsonable(params if params is not None else loader_params(ds.name)),
        "extra": {k: v for k, v in scalars.items() if v is not None},
        "schema": ds.schema.model_dump(mode="json") if ds.schema is not None else None,
    }


def feature_rows(schema: dict[str, Any], *, width: int = 60) -> list[list[str]]:
    """One text row per feature: name, type, range or categories (cut to ``width`` characters),
    flags (``fixed``: neither immutable nor actionable, e.g. past history), cost."""
    rows = []
    for f in schema["features"]:
        if f["categories"]:
            cats = f["categories"]
            values = " | ".join(cats)
            if len(values) > width:
                values = values[: width - 12].rstrip() + f" ... ({len(cats)})"
        elif f["min"] is not None or f["max"] is not None:
            values = f"[{_num(f['min'])}, {_num(f['max'])}]"
        else:
            values = ""
        flags = [
            flag
            for flag, on in (
                ("immutable", f["immutable"]),
                (f"monotone:{f['monotone']}", f["monotone"]),
                ("actionable", f["actionable"] and not f["immutable"]),
                ("fixed", not f["actionable"] and not f["immutable"]),
                ("personal", f["personal"]),
                ("confidential", f["confidential"]),
                ("nullable", f["nullable"]),
            )
            if on
        ]
        rows.append([f["name"], f["type"], values, " ".join(flags), _num(f["cost"])])
    return rows


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:g}"
