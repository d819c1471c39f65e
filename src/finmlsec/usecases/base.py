"""What every use-case build shares: saving models safely, writing splits, the spec and the card.

A build (``finmlsec demo build USECASE --out DIR``) writes into ``DIR``:

* ``spec.yaml``: the paper's organisations, roles and stakes for the use case, a ``model:``
  section for the primary model and a ``data:`` section naming the dataset and the split files;
  ``spec_<model>.yaml`` (and ``spec_<model>_onnx.yaml``, ...) for every other model and format;
* the models: ``<model>.skops`` (scikit-learn, with exactly the ``trusted_types`` the file needs
  listed in its spec), ``<model>.onnx`` where the model converts, ``<model>.pt`` (torch state_dict);
* the splits: ``train``/``test``/``population`` as CSV, JSONL or NPZ (never pickle);
* ``model_card.md`` and ``model_card.json``: each model's quality on the held-out test split.

Example:
    >>> info = ModelInfo(name="logreg", algorithm="logistic regression", formats={},
    ...                  metrics={"roc_auc": 0.79}, gate=("roc_auc", 0.75))
    >>> info.passes
    True
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from finmlsec.datasets.base import Dataset
from finmlsec.datasets.splits import write_split
from finmlsec.errors import ConfigError

SPLIT_SUFFIX = {"tabular": "csv", "text": "jsonl", "image": "npz"}


@dataclass(frozen=True)
class ModelInfo:
    """One trained model: its saved files (format -> model section of a spec) and its quality.

    ``gate`` is the quality bar of the use case, ``(metric, minimum)``, or None.
    """

    name: str
    algorithm: str
    formats: dict[str, dict[str, Any]]
    metrics: dict[str, float]
    gate: tuple[str, float] | None = None
    notes: str = ""

    @property
    def passes(self) -> bool:
        if self.gate is None:
            return True
        metric, minimum = self.gate
        return float(self.metrics.get(metric, float("nan"))) >= minimum


@dataclass(frozen=True)
class BuildResult:
    """What a use-case build wrote."""

    usecase: str
    out: Path
    spec: Path
    models: tuple[ModelInfo, ...]
    splits: dict[str, str]
    card_md: Path
    card_json: Path
    seconds: float
    specs: dict[str, Path] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "usecase": self.usecase,
            "out": str(self.out),
            "spec": str(self.spec),
            "specs": {k: str(v) for k, v in self.specs.items()},
            "splits": self.splits,
            "models": [
                {"name": m.name, "algorithm": m.algorithm, "formats": sorted(m.formats),
                 "metrics": m.metrics, "gate": list(m.gate) if m.gate else None,
                 "passes": m.passes}
                for m in self.models
            ],
            "model_card": {"markdown": str(self.card_md), "json": str(self.card_json)},
            "seconds": round(self.seconds, 2),
        }


# -- the use cases' specs -------------------------------------------------------------------------
def roles_of(usecase: str) -> dict[str, Any]:
    """The use case's organisations, roles and stakes: the package file
    ``finmlsec/usecases/specs/USECASE.yaml`` (one per use case: the one list of their names)."""
    from finmlsec.errors import SpecError
    from finmlsec.spec.load import usecase_spec

    try:
        return usecase_spec(usecase)
    except SpecError as exc:
        raise ConfigError(f"no spec for use case {usecase!r} in finmlsec/usecases/specs") from exc


# -- saving ---------------------------------------------------------------------------------------
def save_skops(model: Any, out: Path, name: str, *, input_kind: str = "tabular") -> dict[str, Any]:
    """Save with skops; return the spec's model section, listing the types the file needs."""
    import skops.io as sio

    path = out / f"{name}.skops"
    sio.dump(model, path)
    from finmlsec.targets.sklearn_files import SAFE_TYPES

    needed = sorted(set(sio.get_untrusted_types(file=path)) - SAFE_TYPES)
    return {"format": "skops", "path": path.name, "trusted_types": needed,
            "input_kind": input_kind}


def save_onnx_sklearn(
    model: Any, out: Path, name: str, *, input_kind: str, sample: Any,
    schema: Any = None, options: Mapping[Any, Any] | None = None,
) -> dict[str, Any]:
    """Convert a fitted scikit-learn model with skl2onnx (one input per column for a pipeline
    over a DataFrame); return the spec's model section."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import (
        FloatTensorType,
        Int64TensorType,
        StringTensorType,
    )

    opts: dict[Any, Any] = {id(model): {"zipmap": False}} if hasattr(model, "classes_") else {}
    opts.update(options or {})
    if input_kind == "tabular" and all(f.is_numeric for f in schema.features) and not hasattr(
        model, "steps"
    ) or input_kind == "tabular" and _single_input(model):
        types: list[tuple[str, Any]] = [("x", FloatTensorType([None, len(schema.features)]))]
    elif input_kind == "tabular":
        types = []
        for f in schema.features:
            if f.type.value == "categorical":
                types.append((f.name, StringTensorType([None, 1])))
            elif f.type.value in ("integer", "binary"):
                types.append((f.name, Int64TensorType([None, 1])))
            else:
                types.append((f.name, FloatTensorType([None, 1])))
    elif input_kind == "text":
        types = [("text", StringTensorType([None, 1]))]
    else:
        types = [("x", FloatTensorType([None, int(np.asarray(sample).shape[1])]))]
    with warnings.catch_warnings():  # an imputer's NaN marker cast for int64 inputs, which
        warnings.filterwarnings(  # hold no NaN: harmless
            "ignore", "invalid value encountered in cast", RuntimeWarning)
        try:
            onx = convert_sklearn(model, initial_types=types, options=opts,
                                  target_opset={"": 17, "ai.onnx.ml": 3})
        except RuntimeError as exc:
            if "takes integer as input" not in str(exc):
                raise
            # an imputer's fill for an integer column is not whole (the median of an even count,
            # 2326.5): skl2onnx cannot impute it into int64, so those inputs are typed float
            # (exact for integers below 2**24; the loader casts by the declared input type)
            types = [(n, FloatTensorType([None, 1]) if isinstance(t, Int64TensorType) else t)
                     for n, t in types]
            onx = convert_sklearn(model, initial_types=types, options=opts,
                                  target_opset={"": 17, "ai.onnx.ml": 3})
    path = out / f"{name}.onnx"
    path.write_bytes(onx.SerializeToString())
    return {"format": "onnx", "path": path.name, "input_kind": input_kind}


def _single_input(model: Any) -> bool:
    """A pipeline that starts with a plain numeric transformer takes one float matrix."""
    steps = getattr(model, "steps", None)
    if not steps:
        return False
    return type(steps[0][1]).__name__ in ("StandardScaler", "MinMaxScaler")


def write_splits(splits: Mapping[str, Dataset], out: Path) -> dict[str, str]:
    """Write each split beside the spec; return role -> file name."""
    names: dict[str, str] = {}
    for role, ds in splits.items():
        fname = f"{role}.{SPLIT_SUFFIX[ds.kind]}"
        write_split(ds, out / fname)
        names[role] = fname
    return names


# -- spec and card --------------------------------------------------------------------------------
def write_spec(
    path: Path, roles: Mapping[str, Any], model: Mapping[str, Any], data: Mapping[str, Any],
    *, header: str,
) -> Path:
    """Write a spec: the use case's roles/stakes, then ``model:`` and ``data:``."""
    doc = {**dict(roles), "model": dict(model), "data": dict(data)}
    text = "\n".join(f"# {line}" for line in header.strip().splitlines()) + "\n"
    text += yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=100)
    path.write_text(text, encoding="utf-8")
    return path


def _fmt(v: float) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def write_card(
    out: Path, *, usecase: str, title: str, dataset: Dataset, splits: Mapping[str, Dataset],
    models: tuple[ModelInfo, ...], intended_use: str, limitations: str,
    extra: Mapping[str, Any] | None = None,
) -> tuple[Path, Path]:
    """The model card as Markdown and JSON (same content)."""
    data = {
        "usecase": usecase,
        "title": title,
        "dataset": {"name": dataset.name, "source": dataset.source, "license": dataset.license,
                    "citation": dataset.citation, "classes": list(dataset.classes),
                    "sizes": {k: len(v) for k, v in splits.items()}},
        "models": [
            {"name": m.name, "algorithm": m.algorithm, "formats": m.formats,
             "held_out_metrics": m.metrics, "quality_gate": list(m.gate) if m.gate else None,
             "passes_gate": m.passes, "notes": m.notes}
            for m in models
        ],
        "intended_use": intended_use,
        "limitations": limitations,
        **dict(extra or {}),
    }
    card_json = out / "model_card.json"
    card_json.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    lines = [f"# Model card: {title}", "", f"Use case: `{usecase}`. {intended_use}", "",
             "## Data", "", f"- Dataset: `{dataset.name}` ({dataset.source or 'n/a'}; "
             f"license: {dataset.license or 'n/a'})",
             f"- Classes: {', '.join(map(str, dataset.classes))}",
             "- Splits: " + ", ".join(f"{k} {len(v)}" for k, v in splits.items()), "",
             "## Models and held-out quality (test split)", ""]
    for m in models:
        gate = f"; gate {m.gate[0]} >= {m.gate[1]}: {'met' if m.passes else 'NOT met'}" \
            if m.gate else ""
        lines.append(f"### {m.name}: {m.algorithm}")
        lines.append("")
        lines.append("| metric | value |")
        lines.append("|---|---|")
        lines += [f"| {k} | {_fmt(v)} |" for k, v in m.metrics.items()]
        lines.append("")
        files = ", ".join(f"{k}: `{v.get('path')}`" for k, v in m.formats.items())
        lines.append(f"Files: {files}{gate}.")
        if m.notes:
            lines += ["", m.notes]
        lines.append("")
    lines += ["## Limitations", "", limitations, ""]
    card_md = out / "model_card.md"
    card_md.write_text("\n".join(lines), encoding="utf-8")
    return card_md, card_json


def finish(
    out: Path, *, usecase: str, title: str, roles: Mapping[str, Any], dataset: Dataset,
    splits: Mapping[str, Dataset], models: tuple[ModelInfo, ...], seed: int, started: float,
    intended_use: str, limitations: str, extra: Mapping[str, Any] | None = None,
) -> BuildResult:
    """Write the splits, one spec per (model, format) and the model card; the first format of
    the first model is the primary ``spec.yaml``."""
    import time

    files = write_splits(splits, out)
    data = {"dataset": dataset.name, "splits": files, "seed": seed}
    specs: dict[str, Path] = {}
    for i, m in enumerate(models):
        for j, (fmt, section) in enumerate(m.formats.items()):
            key = m.name if j == 0 else f"{m.name}_{fmt}"
            fname = "spec.yaml" if i == 0 and j == 0 else f"spec_{key}.yaml"
            header = (f"{title}: written by `finmlsec demo build {usecase}`.\n"
                      f"Model: {m.name} ({m.algorithm}), format {fmt}.")
            specs[key] = write_spec(out / fname, roles, section, data, header=header)
    card_md, card_json = write_card(
        out, usecase=usecase, title=title, dataset=dataset, splits=splits, models=models,
        intended_use=intended_use, limitations=limitations, extra=extra,
    )
    return BuildResult(
        usecase=usecase, out=out, spec=out / "spec.yaml", models=models, splits=files,
        card_md=card_md, card_json=card_json, seconds=time.perf_counter() - started, specs=specs,
    )
