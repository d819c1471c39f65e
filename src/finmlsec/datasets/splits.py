"""A dataset's splits and their files, and the data a spec's ``data:`` section names.

Splits: the files ``data.splits`` names (written by ``finmlsec demo build``: CSV for tabular data
with the label column, JSONL ``{"text", "label"}`` for text, NPZ arrays ``X``/``y`` for images;
never pickle), or, without them, a seeded split of the dataset as ``demo build`` makes it
(:func:`split_three`: 50% train, 25% test, 25% population, stratified, seed ``data.seed``).
Everything read is validated against the feature schema (missing columns, wrong types, NaN where
the schema forbids it, labels outside the classes): a :class:`~finmlsec.errors.DataError` naming
the file.

Example:
    >>> from finmlsec.datasets import load
    >>> train, test, pop = split_three(load("german_credit"), seed=0)
    >>> len(train), len(test), len(pop)
    (500, 250, 250)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from finmlsec.datasets._files import read_csv
from finmlsec.datasets.base import Dataset
from finmlsec.datasets.schema_infer import infer_schema
from finmlsec.errors import DataError, SpecError
from finmlsec.schema import FeatureSchema

#: ``reads(X, ids)``: which of the row-id columns ``ids`` the model reads, tried on ``X`` (a few
#: records as the model was trained on them, ids included); see :func:`keep_read_ids`.
IdProbe = Callable[[pd.DataFrame, Sequence[str]], Sequence[str]]


def split_three(ds: Dataset, seed: int = 0) -> tuple[Dataset, Dataset, Dataset]:
    """(train, test, population): 50% / 25% / 25%, stratified by label, seeded."""
    train, rest = ds.split(0.5, seed=seed)
    test, pop = rest.split(0.5, seed=seed + 1)
    return train, test, pop


# -- split files --------------------------------------------------------------------------------
def label_column(ds: Dataset) -> str:
    if ds.schema is not None and ds.schema.target:
        return ds.schema.target
    return str(ds.extra.get("label_column", "label"))


def write_split(ds: Dataset, path: Path) -> None:
    """Write a split as CSV (tabular), JSONL (text) or NPZ (image), by ``ds.kind``."""
    names = np.asarray(ds.classes)[np.asarray(ds.y, dtype=int)]
    if ds.kind == "tabular":
        frame = ds.X.copy()
        frame[label_column(ds)] = names
        frame.to_csv(path, index=False)
    elif ds.kind == "text":
        with path.open("w", encoding="utf-8") as fh:
            for text, label in zip(ds.X, names, strict=True):
                fh.write(json.dumps({"text": text, "label": str(label)}) + "\n")
    else:
        np.savez_compressed(path, X=np.asarray(ds.X), y=np.asarray(ds.y, dtype=np.int64))


def read_split(path: Path, like: Dataset, *, role: str) -> Dataset:
    """Read a split written by :func:`write_split`, validated against ``like``'s schema and
    classes; errors name the file (``role``: train, test or population)."""
    where = f"data.splits.{role} ({str(path)!r})"
    if not path.is_file():
        raise DataError(f"{where}: file not found; run `finmlsec demo build` or fix the path")
    classes = [str(c) for c in like.classes]
    try:
        if like.kind == "tabular":
            col = label_column(like)
            frame = read_table(path, like.schema)
            if col not in frame.columns:
                raise DataError(f"no label column {col!r}; columns are {list(frame.columns)}")
            X: Any = frame.drop(columns=[col])
            raw: list[Any] = frame[col].astype(str).tolist()
        elif like.kind == "text":
            rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]
            bad = [i for i, r in enumerate(rows) if not isinstance(r, dict) or
                   not isinstance(r.get("text"), str) or "label" not in r]
            if bad:
                raise DataError(f"line {bad[0] + 1} is not an object with a string 'text' and a "
                                "'label'")
            X = [r["text"] for r in rows]
            raw = [str(r["label"]) for r in rows]
        else:
            with np.load(path, allow_pickle=False) as npz:
                if "X" not in npz or "y" not in npz:
                    raise DataError(f"the NPZ file must hold arrays 'X' and 'y'; got {npz.files}")
                X = np.asarray(npz["X"], dtype=float)
                raw = [classes[int(i)] if 0 <= int(i) < len(classes) else str(i)
                       for i in npz["y"]]
    except DataError as exc:
        raise DataError(f"{where}: {exc}") from None
    except (ValueError, OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{where}: cannot read the file: {exc}") from None
    unknown = sorted(set(raw) - set(classes))
    if unknown:
        raise DataError(f"{where}: label(s) {unknown[:5]} are not among the classes {classes}")
    y = np.array([classes.index(v) for v in raw], dtype=int)
    out = replace(like, X=X, y=y)
    validate(out, where=where)
    return out


def validate(ds: Dataset, *, where: str) -> None:
    """Check ``ds.X`` against its schema; :class:`DataError` prefixed with ``where``."""
    try:
        if ds.kind == "tabular":
            if ds.schema is None:
                return
            ds.schema.check(ds.X)
        elif ds.kind == "text":
            bad = [i for i, t in enumerate(ds.X) if not isinstance(t, str) or not t.strip()]
            if bad:
                raise DataError(f"record {bad[0]} is not a non-empty string: {ds.X[bad[0]]!r}")
        else:
            arr = np.asarray(ds.X, dtype=float)
            if not np.isfinite(arr).all():
                raise DataError("images contain NaN or infinite values")
            if ds.schema is not None:
                flat = arr.reshape(len(arr), -1)
                if flat.shape[1] != len(ds.schema.features):
                    raise DataError(f"images have {flat.shape[1]} values each; the schema "
                                    f"expects {len(ds.schema.features)}")
                ds.schema.check(pd.DataFrame(flat, columns=ds.schema.names))
    except DataError as exc:
        raise DataError(f"{where}: {exc}") from None


def _schema_from_yaml(path: Path) -> FeatureSchema:
    import yaml
    from pydantic import ValidationError

    if not path.is_file():
        raise SpecError(f"schema file {str(path)!r} not found", "data.schema")
    try:
        return FeatureSchema.model_validate(yaml.safe_load(path.read_text("utf-8")))
    except (yaml.YAMLError, ValidationError) as exc:
        raise SpecError(f"invalid feature schema in {str(path)!r}: {exc}", "data.schema") from None


#: The description of a row id :func:`keep_read_ids` made a model input again (the scan's record
#: of its row ids tells it from an id the schema itself lists among the features).
READ_ID = "row id the model reads"


def keep_read_ids(schema: FeatureSchema, X: pd.DataFrame, reads: IdProbe | None) -> FeatureSchema:
    """``schema`` with each row id the model reads (``reads``) made a feature again, frozen and
    unbounded (a new record has a new id), at its place in ``X``'s columns; the other ids stay
    out of the model's input."""
    from finmlsec.datasets.schema_infer import infer_schema

    cand = [c for c in schema.dropped_ids if c in X.columns]
    if not cand or reads is None:
        return schema
    kept = [c for c in reads(X.iloc[:8], cand) if c in cand]
    if not kept:
        return schema
    added = {f.name: f.model_copy(update={"immutable": True, "actionable": False, "min": None,
                                          "max": None, "description": READ_ID})
             for f in infer_schema(X[kept], ids=False).schema.features}
    order = {str(c): i for i, c in enumerate(X.columns)}
    feats = sorted([*schema.features, *added.values()],
                   key=lambda f: order.get(f.name, len(order)))
    return FeatureSchema(**{**dict(schema), "features": tuple(feats)})


def _dataset_from_csv(path: Path, label: str, schema: FeatureSchema | None,
                      reads: IdProbe | None = None) -> Dataset:
    if not path.is_file():
        raise DataError(f"data.path {str(path)!r}: file not found")
    try:
        raw = read_csv(path)
    except (ValueError, OSError) as exc:
        raise DataError(f"data.path {str(path)!r}: cannot read the CSV: {exc}") from None
    if label not in raw.columns:
        raise DataError(f"data.path {str(path)!r}: no label column {label!r}; columns are "
                        f"{list(raw.columns)}")
    if schema is None:
        schema = infer_schema(raw.drop(columns=[label])).schema
    schema = keep_read_ids(with_dtypes(schema, raw), raw.drop(columns=[label]), reads)
    frame = as_schema_view(raw, schema)
    labels = frame[label].astype(str)
    classes = tuple(schema.classes) if schema and schema.classes else tuple(sorted(labels.unique()))
    X = frame.drop(columns=[label])
    ds = Dataset(name=path.stem, X=X, y=np.zeros(len(X), dtype=int), classes=classes,
                 schema=schema, source=str(path), extra={"label_column": label})
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        raise DataError(f"data.path {str(path)!r}: label(s) {unknown[:5]} are not among the "
                        f"schema's classes {list(classes)}")
    ds = replace(ds, y=np.array([classes.index(v) for v in labels], dtype=int))
    validate(ds, where=f"data.path ({str(path)!r})")
    return ds


def read_table(path: Path, schema: FeatureSchema | None) -> pd.DataFrame:
    """A CSV as the scan holds it: as pandas reads it, categorical fields as text."""
    raw = read_csv(path)
    return as_schema_view(raw, schema) if schema is not None else raw


def as_schema_view(frame: pd.DataFrame, schema: FeatureSchema) -> pd.DataFrame:
    """Categorical fields as text (integer codes ``1``, also read as ``1.0`` where the column has
    missing cells, become ``'1'``), missing cells kept missing; the row ids the model does not
    read (``schema.ids``) left out."""
    out = schema.drop_ids(frame).copy()
    for f in schema.categorical():
        if f.name not in out.columns:
            continue
        col = out[f.name]
        isna = col.isna()
        if pd.api.types.is_float_dtype(col) and bool(
                (col[~isna] == col[~isna].round()).all()):
            text = col.astype("Int64").astype(str)
        else:
            text = col.astype(str)
        out[f.name] = text.astype(object).where(~isna, np.nan)
    return out


def with_dtypes(schema: FeatureSchema, raw: pd.DataFrame) -> FeatureSchema:
    """``schema`` with each field's ``dtype`` filled in from ``raw`` (the CSV as pandas reads it,
    i.e. as the model was trained on it) where the schema declares none."""
    from finmlsec.datasets.schema_infer import column_dtype

    feats = tuple(
        f.model_copy(update={"dtype": column_dtype(raw[f.name])})
        if f.dtype is None and f.name in raw.columns and f.type.value not in ("image",) else f
        for f in schema.features)
    return schema.model_copy(update={"features": feats})


def load_data(ref: Any, base: Path, *, reads: IdProbe | None = None
              ) -> tuple[Dataset, Dataset, Dataset | None, Dataset | None]:
    """The dataset a spec's ``data:`` section (``ref``) names, and its (train, test, population)
    splits; paths are relative to ``base``. Parquet data, or any ``data.path`` with
    ``data.sample``, is read in chunks and sampled (:func:`load_sampled`:
    the dataset then holds the train sample). The schema's row ids are left out of every
    split, but those the model reads (``reads``, see :func:`keep_read_ids`)."""
    from finmlsec.datasets.chunked import DEFAULT_SAMPLE, is_parquet

    schema = _schema_from_yaml(base / ref.schema) if ref.schema else None
    if ref.path is not None and (ref.sample is not None or is_parquet(base / ref.path)):
        if ref.splits is not None:
            raise SpecError("Parquet data is split as it is read; remove data.splits or give "
                            "CSV files", "data.splits")
        assert ref.label is not None
        return load_sampled(base / ref.path, ref.label, schema, seed=ref.seed,
                            sample=ref.sample if ref.sample is not None else DEFAULT_SAMPLE,
                            reads=reads)
    if ref.dataset is not None:
        from finmlsec.datasets import load

        dataset = load(ref.dataset)
        if schema is not None:
            dataset = replace(dataset, schema=schema)
    else:
        assert ref.path is not None and ref.label is not None
        dataset = _dataset_from_csv(base / ref.path, ref.label, schema, reads)
    splits = ref.splits
    if splits is not None and splits.train:
        train = read_split(base / splits.train, dataset, role="train")
        test = read_split(base / splits.test, dataset, role="test") if splits.test else None
        pop = (read_split(base / splits.population, dataset, role="population")
               if splits.population else None)
        return dataset, train, test, pop
    validate(dataset, where=f"dataset {dataset.name!r}")
    return (dataset, *split_three(dataset, ref.seed))


def load_sampled(path: Path, label: str, schema: Any, *, sample: int, seed: int,
                 chunk_rows: int | None = None, reads: IdProbe | None = None
                 ) -> tuple[Dataset, Dataset, Dataset, Dataset]:
    """The ``(dataset, train, test, population)`` of a spec whose data is read in chunks; the
    dataset holds the train sample and, in ``extra["sample"]``, the
    :class:`~finmlsec.datasets.chunked.SampleInfo` (see :mod:`finmlsec.datasets.chunked`)."""
    from finmlsec.datasets.chunked import CHUNK_ROWS, sample_path

    classes = tuple(schema.classes) if schema is not None and schema.classes else None
    got = sample_path(path, label, sample=sample, seed=seed,
                      chunk_rows=chunk_rows or CHUNK_ROWS, classes=classes)
    train_raw = got.parts["train"][0]
    if schema is None:
        schema = infer_schema(train_raw).schema
    schema = keep_read_ids(with_dtypes(schema, train_raw), train_raw, reads)
    if classes is None:
        classes = tuple(sorted({lab for _, labs in got.parts.values() for lab in labs}))
    out: dict[str, Dataset] = {}
    for s, (X, labels) in got.parts.items():
        lookup = {c: i for i, c in enumerate(classes)}
        y = np.array([lookup[v] for v in labels.tolist()], dtype=int)
        ds = Dataset(name=path.stem, X=as_schema_view(X, schema), y=y, classes=classes,
                     schema=schema, source=str(path),
                     extra={"label_column": label, "sample": got.info})
        validate(ds, where=f"data.path ({str(path)!r}), {s} sample")
        out[s] = ds
    return (replace(out["train"], name=path.stem), out["train"], out["test"],
            out["population"])
