"""What the attack, scan and serve commands need from a spec: the target, the data, the splits.

:func:`load_scenario` reads a spec (or takes a loaded :class:`~finmlsec.spec.SystemSpec`), loads
the model its ``model:`` section points at, loads and validates the data of its ``data:`` section
against the feature schema (missing columns, wrong types, NaN where the schema forbids it, labels
outside the classes: a :class:`~finmlsec.errors.DataError` naming the file), and splits it.

Splits: the files ``data.splits`` names (written by ``finmlsec demo build``: CSV for tabular data
with the label column, JSONL ``{"text", "label"}`` for text, NPZ arrays ``X``/``y`` for images;
never pickle), or, without them, a seeded split of the dataset as ``demo build`` makes it
(:func:`split_three`: 50% train, 25% test, 25% population, stratified, seed ``data.seed``).

Roles of the splits: ``train`` is what the model was trained on (the members); ``test`` is
held-out data for utility and fidelity; ``population`` is data from the same distribution that the
attacker holds. :meth:`Scenario.attack_data` builds the attack's view: in the standard threat
model the attacker's candidate pool mixes training members with the population (membership
unknown to the attacker; the nonmembers scored are the population records), in the strict one the
pool is the population only, disjoint from the training data, and the nonmembers scored are the
test records.

Example:
    >>> from finmlsec.spec import parse_spec
    >>> spec = parse_spec('''
    ... organisations: [{id: bank}, {id: customer}]
    ... roles: {training_data_provider: bank, system_user: customer,
    ...         model_generator: bank, model_operator: bank}
    ... data: {dataset: german_credit, seed: 0}
    ... ''')
    >>> sc = load_scenario(spec)
    >>> len(sc.train), len(sc.test), len(sc.population), sc.target is None
    (500, 250, 250, True)
    >>> data = sc.attack_data(standard=True)
    >>> len(data.population), len(data.members), len(data.nonmembers)
    (750, 500, 250)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from finmlsec.attacks.base import AttackData, Labeled
from finmlsec.datasets.base import Dataset
from finmlsec.datasets.schema import FeatureSchema
from finmlsec.errors import DataError, SpecError, TargetError
from finmlsec.targets.base import Target


@dataclass(frozen=True)
class Scenario:
    """A loaded spec with its target and data (see the module docstring)."""

    spec: Any
    target: Target | None
    schema: FeatureSchema | None
    dataset: Dataset | None
    train: Dataset | None
    test: Dataset | None
    population: Dataset | None
    model_factory: Callable[[], Any] | None
    seed: int = 0

    def attack_data(self, standard: bool = True) -> AttackData:
        """The attacker's knowledge and the evaluator's truth for this scenario.

        ``standard=True``: the attacker's pool is train + population, shuffled (it may contain
        the members; the attacker does not know which); nonmembers scored are the population.
        ``standard=False`` (strict): the pool is the population only; nonmembers are the test set.
        """
        train, test, pop = self.train, self.test, self.population
        endpoint = getattr(self.target, "url", None)
        if standard and train is not None and pop is not None:
            pool: Labeled | None = _shuffle(_concat(_lab(train), _lab(pop)), self.seed)
            nonmembers: Labeled | None = _lab(pop)
        else:
            pool = _lab(pop) if pop is not None else None
            nonmembers = _lab(test) if test is not None else None
        return AttackData(
            schema=self.schema,
            population=pool,
            model_factory=self.model_factory,
            train=_lab(train) if train is not None else None,
            endpoint=endpoint if isinstance(endpoint, str) else None,
            members=_lab(train) if train is not None else None,
            nonmembers=nonmembers if train is not None else None,
            test=_lab(test) if test is not None else None,
            extra={"threat_model": "standard" if standard else "strict",
                   "classes": list(self.dataset.classes) if self.dataset is not None else None},
        )


def _lab(ds: Dataset) -> Labeled:
    return Labeled(ds.X, np.asarray(ds.y))


def _concat(a: Labeled, b: Labeled) -> Labeled:
    if isinstance(a.X, pd.DataFrame):
        X: Any = pd.concat([a.X, b.X], ignore_index=True)
    elif isinstance(a.X, np.ndarray):
        X = np.concatenate([a.X, b.X])
    else:
        X = list(a.X) + list(b.X)
    y = np.concatenate([np.asarray(a.y), np.asarray(b.y)])
    return Labeled(X, y)


def _shuffle(data: Labeled, seed: int) -> Labeled:
    order = np.random.default_rng(seed).permutation(len(data))
    if isinstance(data.X, pd.DataFrame):
        X: Any = data.X.iloc[order].reset_index(drop=True)
    elif isinstance(data.X, np.ndarray):
        X = data.X[order]
    else:
        X = [data.X[int(i)] for i in order]
    assert data.y is not None
    return Labeled(X, data.y[order])


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


# -- loading --------------------------------------------------------------------------------------
def _schema_from_yaml(path: Path) -> FeatureSchema:
    import yaml
    from pydantic import ValidationError

    if not path.is_file():
        raise SpecError(f"schema file {str(path)!r} not found", "data.schema")
    try:
        return FeatureSchema.model_validate(yaml.safe_load(path.read_text("utf-8")))
    except (yaml.YAMLError, ValidationError) as exc:
        raise SpecError(f"invalid feature schema in {str(path)!r}: {exc}", "data.schema") from None


def _dataset_from_csv(path: Path, label: str, schema: FeatureSchema | None) -> Dataset:
    if not path.is_file():
        raise DataError(f"data.path {str(path)!r}: file not found")
    try:
        raw = pd.read_csv(path)
    except (ValueError, OSError) as exc:
        raise DataError(f"data.path {str(path)!r}: cannot read the CSV: {exc}") from None
    if label not in raw.columns:
        raise DataError(f"data.path {str(path)!r}: no label column {label!r}; columns are "
                        f"{list(raw.columns)}")
    if schema is None:
        schema = FeatureSchema.infer(raw.drop(columns=[label]))
    schema = with_dtypes(schema, raw)
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
    raw = pd.read_csv(path)
    return as_schema_view(raw, schema) if schema is not None else raw


def as_schema_view(frame: pd.DataFrame, schema: FeatureSchema) -> pd.DataFrame:
    """Categorical fields as text (integer codes ``1``, also read as ``1.0`` where the column has
    missing cells, become ``'1'``), missing cells kept missing."""
    out = frame.copy()
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


def _model_factory(target: Target | None) -> Callable[[], Any] | None:
    own = getattr(target, "model_factory", None)
    if callable(own):  # torch targets: an unfitted TorchClassifier
        return own
    est = getattr(target, "estimator", None)
    if est is None:
        return None
    from sklearn.base import clone

    def factory() -> Any:
        return clone(est)

    return factory


def load_scenario(spec_or_path: Any, *, trust_pickle: bool = False) -> Scenario:
    """Load a spec's target and data (see the module docstring)."""
    from finmlsec.spec import SystemSpec, load_spec

    spec = spec_or_path if isinstance(spec_or_path, SystemSpec) else load_spec(spec_or_path)
    base = Path(spec.source_dir)
    target = None
    if spec.model is not None:
        from finmlsec.targets.load import load_target

        target = load_target(spec.model, base_dir=base, trust_pickle=trust_pickle)
    ref = spec.data
    if ref is None:
        return Scenario(spec, target, None, None, None, None, None, _model_factory(target))
    schema = _schema_from_yaml(base / ref.schema) if ref.schema else None
    if ref.dataset is not None:
        from finmlsec.datasets import load

        dataset = load(ref.dataset)
        if schema is not None:
            dataset = replace(dataset, schema=schema)
    else:
        assert ref.path is not None and ref.label is not None
        dataset = _dataset_from_csv(base / ref.path, ref.label, schema)
    splits = ref.splits
    if splits is not None and splits.train:
        train = read_split(base / splits.train, dataset, role="train")
        test = read_split(base / splits.test, dataset, role="test") if splits.test else None
        pop = (read_split(base / splits.population, dataset, role="population")
               if splits.population else None)
    else:
        validate(dataset, where=f"dataset {dataset.name!r}")
        train, test, pop = split_three(dataset, ref.seed)
    if target is not None:
        from finmlsec.targets.typed import typed

        target = typed(target, dataset.schema)
    if target is not None and not hasattr(target, "url"):
        _smoke(target, (test or train).X)
    return Scenario(spec, target, dataset.schema, dataset, train, test, pop,
                    _model_factory(target), seed=ref.seed)


def _smoke(target: Target, X: Any) -> None:
    """Fail early, with a clear message, when the model cannot read the data."""
    head = X.iloc[:2] if isinstance(X, pd.DataFrame) else X[:2]
    try:
        target.predict(head)
    except TargetError:
        raise
    except Exception as exc:
        raise TargetError(
            f"the model cannot predict on the spec's data ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); check that model: and data: "
            "describe the same inputs"
        ) from None
