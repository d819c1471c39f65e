"""Feature schemas: what each input field is, what values are valid, and what may change.

Attacks read the schema to produce only valid records (evasion constraints, extraction queries,
attribute inference on personal fields); defences read it to generalise or validate.

Example:
    >>> import pandas as pd
    >>> from finmlsec.datasets.schema import Feature, FeatureSchema
    >>> schema = FeatureSchema(features=[
    ...     Feature(name="age", type="integer", min=18, max=75, immutable=True, personal=True),
    ...     Feature(name="purpose", type="categorical", categories=["car", "education"]),
    ... ])
    >>> schema.check(pd.DataFrame({"age": [30], "purpose": ["car"]}))
    >>> schema.check(pd.DataFrame({"age": [12], "purpose": ["car"]}))
    Traceback (most recent call last):
    ...
    finmlsec.errors.DataError: column 'age': 1 value(s) below the minimum 18 (first: 12 at row 0); fix the data or widen the schema's range
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from finmlsec.errors import DataError


class FeatureType(StrEnum):
    NUMERIC = "numeric"
    INTEGER = "integer"
    CATEGORICAL = "categorical"
    BINARY = "binary"
    TEXT = "text"
    IMAGE = "image"


class Feature(BaseModel):
    """One input field.

    ``immutable``: the data subject cannot change it (age, sex). ``monotone``: it can only move in
    one direction (age only grows). ``actionable``: an applicant could plausibly change it.
    ``personal``/``confidential``: what attribute inference targets and generalisation protects.
    ``cost``: relative cost of changing the field by one unit (numeric: per standard deviation;
    categorical: per change), used by constrained evasion.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    type: FeatureType
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] | None = None
    immutable: bool = False
    monotone: Literal["increasing", "decreasing"] | None = None
    actionable: bool = True
    personal: bool = False
    confidential: bool = False
    nullable: bool = False
    cost: float = Field(default=1.0, gt=0)
    description: str = ""

    @model_validator(mode="after")
    def _check(self) -> Feature:
        if self.type in (FeatureType.CATEGORICAL,) and not self.categories:
            raise ValueError(f"categorical feature {self.name!r} needs 'categories'")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"feature {self.name!r}: min {self.min} > max {self.max}")
        return self

    @property
    def is_numeric(self) -> bool:
        return self.type in (FeatureType.NUMERIC, FeatureType.INTEGER, FeatureType.BINARY)

    @property
    def mutable(self) -> bool:
        """Whether an attacker acting as the data subject may change this field."""
        return self.actionable and not self.immutable


class FeatureSchema(BaseModel):
    """The ordered fields of a tabular input, plus validation and valid sampling."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    features: tuple[Feature, ...]
    target: str | None = None
    classes: tuple[str, ...] | None = None
    positive_class: str | None = None
    #: The decision a manipulating data subject wants (credit: "good"; fraud: "legit"); attacks
    #: that need a goal and are given none aim at it. ``positive_class`` is the class metrics
    #: treat as positive (fraud: "fraud"), which is not always what an attacker wants.
    favourable_class: str | None = None

    @model_validator(mode="after")
    def _unique(self) -> FeatureSchema:
        names = [f.name for f in self.features]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate feature names: {sorted(dup)}")
        return self

    # -- lookup -------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def __getitem__(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(f"no feature {name!r} in schema; known: {', '.join(self.names)}")

    def personal(self) -> list[Feature]:
        return [f for f in self.features if f.personal]

    def numeric(self) -> list[Feature]:
        return [f for f in self.features if f.is_numeric]

    def categorical(self) -> list[Feature]:
        return [f for f in self.features if f.type == FeatureType.CATEGORICAL]

    # -- validation ---------------------------------------------------------------------------
    def check(self, X: Any, *, allow_extra: bool = False) -> None:
        """Raise :class:`DataError` naming the first problem: missing or unknown columns, wrong
        types, NaN where not nullable, values out of range or not among the categories."""
        if not isinstance(X, pd.DataFrame):
            raise DataError(
                f"expected a pandas DataFrame with columns {self.names}, got {type(X).__name__}"
            )
        missing = [n for n in self.names if n not in X.columns]
        if missing:
            raise DataError(f"missing column(s) {missing}; the schema expects {self.names}")
        extra = [c for c in X.columns if c not in self.names]
        if extra and not allow_extra:
            raise DataError(f"unknown column(s) {extra}; the schema expects {self.names}")
        for f in self.features:
            self._validate_column(f, X[f.name])

    def _validate_column(self, f: Feature, col: pd.Series) -> None:
        isna = col.isna().to_numpy()
        if isna.any() and not f.nullable:
            row = int(np.flatnonzero(isna)[0])
            raise DataError(
                f"column {f.name!r}: {int(isna.sum())} missing value(s) (NaN/None), first at row "
                f"{row}; the schema does not allow missing values here"
            )
        values = col[~isna]
        if f.type == FeatureType.CATEGORICAL:
            allowed = set(f.categories or ())
            bad = ~values.astype(str).isin(allowed)
            if bad.any():
                first = values[bad].iloc[0]
                raise DataError(
                    f"column {f.name!r}: {int(bad.sum())} value(s) not among the categories "
                    f"(first: {first!r}); allowed: {sorted(allowed)}"
                )
            return
        if f.type in (FeatureType.TEXT, FeatureType.IMAGE):
            return
        try:
            num = pd.to_numeric(values, errors="raise").astype(float)
        except (ValueError, TypeError):
            raise DataError(
                f"column {f.name!r}: expected {f.type.value} values, got {values.dtype} "
                f"(first: {values.iloc[0]!r})"
            ) from None
        arr = num.to_numpy()
        if not np.isfinite(arr).all():
            raise DataError(f"column {f.name!r}: infinite values are not allowed")
        if f.type in (FeatureType.INTEGER, FeatureType.BINARY):
            frac = arr != np.round(arr)
            if frac.any():
                raise DataError(
                    f"column {f.name!r}: expected whole numbers, got {arr[frac][0]!r}"
                )
        if f.type == FeatureType.BINARY:
            bad = ~np.isin(arr, (0.0, 1.0))
            if bad.any():
                raise DataError(f"column {f.name!r}: expected 0 or 1, got {arr[bad][0]!r}")
        if f.min is not None and (arr < f.min).any():
            i = int(np.flatnonzero(arr < f.min)[0])
            raise DataError(
                f"column {f.name!r}: {int((arr < f.min).sum())} value(s) below the minimum "
                f"{f.min:g} (first: {arr[i]:g} at row {values.index[i]}); fix the data or widen "
                "the schema's range"
            )
        if f.max is not None and (arr > f.max).any():
            i = int(np.flatnonzero(arr > f.max)[0])
            raise DataError(
                f"column {f.name!r}: {int((arr > f.max).sum())} value(s) above the maximum "
                f"{f.max:g} (first: {arr[i]:g} at row {values.index[i]}); fix the data or widen "
                "the schema's range"
            )

    def is_valid(self, X: pd.DataFrame) -> np.ndarray:
        """Boolean mask: which rows satisfy the schema (types, ranges, categories, no NaN)."""
        ok = np.ones(len(X), dtype=bool)
        for f in self.features:
            col = X[f.name]
            isna = col.isna().to_numpy()
            if not f.nullable:
                ok &= ~isna
            if f.type == FeatureType.CATEGORICAL:
                ok &= col.astype(str).isin(set(f.categories or ())).to_numpy() | isna
            elif f.is_numeric:
                arr = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
                good = np.isfinite(arr)
                if f.type in (FeatureType.INTEGER, FeatureType.BINARY):
                    good &= arr == np.round(np.nan_to_num(arr))
                if f.type == FeatureType.BINARY:
                    good &= np.isin(arr, (0.0, 1.0))
                if f.min is not None:
                    good &= np.nan_to_num(arr, nan=f.min) >= f.min
                if f.max is not None:
                    good &= np.nan_to_num(arr, nan=f.max) <= f.max
                ok &= good | (isna & f.nullable)
        return ok

    # -- valid sampling and projection --------------------------------------------------------
    def sample_uniform(self, n: int, rng: np.random.Generator | int) -> pd.DataFrame:
        """``n`` records drawn uniformly from the schema's input space (ranges must be bounded)."""
        rng = np.random.default_rng(rng)
        cols: dict[str, Any] = {}
        for f in self.features:
            if f.type == FeatureType.CATEGORICAL:
                cats = list(f.categories or ())
                cols[f.name] = [cats[i] for i in rng.integers(0, len(cats), size=n)]
            elif f.type == FeatureType.BINARY:
                cols[f.name] = rng.integers(0, 2, size=n)
            elif f.type in (FeatureType.NUMERIC, FeatureType.INTEGER):
                if f.min is None or f.max is None:
                    raise DataError(
                        f"feature {f.name!r} has no bounded range; uniform sampling needs min and max"
                    )
                if f.type == FeatureType.INTEGER:
                    cols[f.name] = rng.integers(int(f.min), int(f.max) + 1, size=n)
                else:
                    cols[f.name] = rng.uniform(f.min, f.max, size=n)
            else:
                raise DataError(f"cannot sample feature {f.name!r} of type {f.type.value}")
        return pd.DataFrame(cols, columns=self.names)

    def project(self, X: pd.DataFrame) -> pd.DataFrame:
        """Clip numeric fields to their range and round integer fields (categoricals untouched)."""
        out = X.copy()
        for f in self.features:
            if f.type in (FeatureType.NUMERIC, FeatureType.INTEGER, FeatureType.BINARY):
                arr = pd.to_numeric(out[f.name], errors="coerce").astype(float)
                lo = f.min if f.min is not None else (0.0 if f.type == FeatureType.BINARY else None)
                hi = f.max if f.max is not None else (1.0 if f.type == FeatureType.BINARY else None)
                arr = arr.clip(lower=lo, upper=hi)
                if f.type != FeatureType.NUMERIC:
                    out[f.name] = arr.round().astype(int)
                else:
                    out[f.name] = arr
        return out

    @classmethod
    def infer(
        cls,
        X: pd.DataFrame,
        *,
        integer: Sequence[str] = (),
        personal: Sequence[str] = (),
        immutable: Sequence[str] = (),
    ) -> FeatureSchema:
        """A schema read off a DataFrame (ranges from the data); a starting point to edit."""
        feats = []
        for name in X.columns:
            col = X[name]
            kw: dict[str, Any] = {
                "name": str(name),
                "personal": name in personal,
                "immutable": name in immutable,
            }
            if col.dtype == object or isinstance(col.dtype, pd.CategoricalDtype):
                kw.update(type="categorical", categories=tuple(sorted(map(str, col.unique()))))
            else:
                is_int = name in integer or pd.api.types.is_integer_dtype(col)
                kw.update(
                    type="integer" if is_int else "numeric",
                    min=float(col.min()),
                    max=float(col.max()),
                )
            feats.append(Feature(**kw))
        return cls(features=tuple(feats))
