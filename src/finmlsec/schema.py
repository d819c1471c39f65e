"""The bottom layer: what each input field is, what values are valid, what may change, and the
one numeric encoding of a record every package uses.

Attacks read the schema to produce only valid records (evasion constraints, extraction queries,
attribute inference on personal fields); defences read it to generalise or validate; models,
surrogates and detectors encode records with :func:`preprocessor`. This module imports nothing
from the rest of the package but :mod:`finmlsec.errors`.

Example:
    >>> import pandas as pd
    >>> from finmlsec.schema import Feature, FeatureSchema
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

from enum import StrEnum
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from finmlsec.errors import ConfigError, DataError

InputKind = Literal["tabular", "text", "image"]
"""What a model takes: records (a pandas DataFrame), texts (a list of str) or images (an array)."""

INPUT_KINDS: tuple[InputKind, ...] = ("tabular", "text", "image")


class FeatureType(StrEnum):
    NUMERIC = "numeric"
    INTEGER = "integer"
    CATEGORICAL = "categorical"
    BINARY = "binary"
    TEXT = "text"
    IMAGE = "image"


class Derived(BaseModel):
    """How a field is computed from others: ``ratio: [numerator, denominator]`` times ``scale``
    (``debt_to_income = 12 * monthly_debt / annual_income``: ``ratio: [monthly_debt,
    annual_income]``, ``scale: 12``). Missing where a source is missing or the denominator is 0.
    ``decimals``: the value is stored rounded to this many decimals; ``tolerance``: the relative
    difference accepted between a stored value and the recomputed one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ratio: tuple[str, str]
    scale: float = 1.0
    decimals: int | None = Field(default=None, ge=0, le=15)
    tolerance: float = Field(default=1e-3, ge=0)

    @property
    def sources(self) -> tuple[str, ...]:
        return self.ratio

    def compute(self, X: pd.DataFrame) -> np.ndarray:
        num = pd.to_numeric(X[self.ratio[0]], errors="coerce").to_numpy(dtype=float)
        den = pd.to_numeric(X[self.ratio[1]], errors="coerce").to_numpy(dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = self.scale * num / den
        out[~np.isfinite(out)] = np.nan
        return np.round(out, self.decimals) if self.decimals is not None else out

    def consistent(self, X: pd.DataFrame, column: pd.Series) -> np.ndarray:
        """Per row: the stored value agrees with the recomputed one (both missing agrees)."""
        want = self.compute(X)
        have = pd.to_numeric(column, errors="coerce").to_numpy(dtype=float)
        both_na = np.isnan(want) & np.isnan(have)
        step = 0.5 * 10.0 ** -self.decimals if self.decimals is not None else 0.0
        close = np.isclose(have, want, rtol=self.tolerance, atol=1e-9 + step)
        return np.asarray(both_na | close, dtype=bool)


class Feature(BaseModel):
    """One input field.

    ``immutable``: the data subject cannot change it (age, sex). ``monotone``: it can only move in
    one direction (age only grows). ``actionable``: an applicant could plausibly change it.
    ``personal``/``confidential``: what attribute inference targets and generalisation protects.
    ``quasi_identifier``: an outsider may know it about a person without the data (a
    transaction's hour and weekday): linkage links on it, as on personal and immutable fields,
    though the data subject may still change it.
    ``cost``: relative cost of changing the field by one unit (numeric: per standard deviation;
    categorical: per change), used by constrained evasion. ``nullable``: missing values are
    allowed (and kept missing by evasion where the field is frozen). ``dtype``: the dtype the
    model was trained with (``int64``, ``float64``, ``object``, ...): the model receives the
    column in it, whatever ``type`` says (integer codes declared ``categorical`` reach the model
    as integers). ``derived``: the field is computed from others (see :class:`Derived`); evasion
    recomputes it after every change, and validity checks it.
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
    quasi_identifier: bool = False
    nullable: bool = False
    cost: float = Field(default=1.0, gt=0)
    dtype: str | None = None
    derived: Derived | None = None
    description: str = ""

    @model_validator(mode="after")
    def _check(self) -> Feature:
        if self.type in (FeatureType.CATEGORICAL,) and not self.categories:
            raise ValueError(f"categorical feature {self.name!r} needs 'categories'")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"feature {self.name!r}: min {self.min} > max {self.max}")
        if self.dtype is not None:
            try:
                np.dtype(self.dtype if self.dtype not in ("string", "str") else "object")
            except TypeError:
                raise ValueError(f"feature {self.name!r}: unknown dtype {self.dtype!r}; use "
                                 "int64, float64, object, bool, ...") from None
        if self.derived is not None and not self.is_numeric:
            raise ValueError(f"feature {self.name!r}: only numeric fields can be derived")
        return self

    @property
    def is_numeric(self) -> bool:
        return self.type in (FeatureType.NUMERIC, FeatureType.INTEGER, FeatureType.BINARY)

    @property
    def mutable(self) -> bool:
        """Whether an attacker acting as the data subject may change this field (a derived
        field changes only through its sources; text is never searched)."""
        return (self.actionable and not self.immutable and self.derived is None
                and self.type not in (FeatureType.TEXT, FeatureType.IMAGE))


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
    #: Row identifiers (a running index such as ``Unnamed: 0``, or ``loan_id``): columns of the
    #: data that are not model inputs. Loading drops them, the gateway does not ask clients for
    #: them. An id also listed in ``features`` is one the model reads (it was trained with it):
    #: it is kept as an input, frozen (``immutable``, not ``actionable``) so no attack changes it.
    ids: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _unique(self) -> FeatureSchema:
        names = [f.name for f in self.features]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"duplicate feature names: {sorted(dup)}")
        if len(set(self.ids)) != len(self.ids):
            raise ValueError(f"duplicate ids: {sorted(self.ids)}")
        if self.target is not None and self.target in self.ids:
            raise ValueError(f"the label {self.target!r} cannot be a row id")
        read = set(self.ids) & set(names)
        if any(f.mutable for f in self.features if f.name in read):
            frozen = tuple(f.model_copy(update={"immutable": True, "actionable": False})
                           if f.name in read else f for f in self.features)
            object.__setattr__(self, "features", frozen)
        for f in self.features:
            if f.derived is not None:
                bad = [s for s in f.derived.sources if s not in names or s == f.name]
                if bad:
                    raise ValueError(f"derived feature {f.name!r}: source(s) {bad} are not "
                                     "other features of the schema")
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

    @property
    def dropped_ids(self) -> list[str]:
        """The row ids that are not model inputs (``ids`` not also among the features)."""
        names = set(self.names)
        return [i for i in self.ids if i not in names]

    def drop_ids(self, X: pd.DataFrame) -> pd.DataFrame:
        """``X`` without the row-id columns the model does not read (``X`` itself if none)."""
        gone = [c for c in self.dropped_ids if c in X.columns]
        return X.drop(columns=gone) if gone else X

    def personal(self) -> list[Feature]:
        return [f for f in self.features if f.personal]

    def numeric(self) -> list[Feature]:
        return [f for f in self.features if f.is_numeric]

    def categorical(self) -> list[Feature]:
        return [f for f in self.features if f.type == FeatureType.CATEGORICAL]

    def tabular(self) -> FeatureSchema:
        """This schema without its free-text and image fields: what :func:`preprocessor`
        encodes (records keep those columns; the encoding leaves them out)."""
        keep = tuple(f for f in self.features
                     if f.type not in (FeatureType.TEXT, FeatureType.IMAGE))
        return self if len(keep) == len(self.features) else self.model_copy(
            update={"features": keep})

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
        extra = [c for c in X.columns if c not in self.names and c not in self.ids]
        if extra and not allow_extra:
            raise DataError(f"unknown column(s) {extra}; the schema expects {self.names}")
        for f in self.features:
            self._validate_column(f, X[f.name])
        for f in self.features:
            if f.derived is not None:
                bad = ~f.derived.consistent(X, X[f.name])
                if bad.any():
                    i = int(np.flatnonzero(bad)[0])
                    raise DataError(
                        f"column {f.name!r}: {int(bad.sum())} value(s) disagree with its "
                        f"derivation {f.derived.scale:g} * {f.derived.ratio[0]} / "
                        f"{f.derived.ratio[1]} (first at row {i}); fix the data or the schema's "
                        "'derived' entry")

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
            if f.derived is not None:
                ok &= f.derived.consistent(X, col)
        return ok

    # -- derived fields and dtypes as trained ----------------------------------------------------
    def derive(self, X: pd.DataFrame) -> pd.DataFrame:
        """``X`` with every derived field recomputed from its sources (a copy if any)."""
        derived = [f for f in self.features if f.derived is not None and f.name in X.columns]
        if not derived:
            return X
        out = X.copy()
        for f in derived:
            assert f.derived is not None
            out[f.name] = f.derived.compute(out)
        return out

    def as_trained(self, X: Any) -> Any:
        """``X`` with each column in the dtype the model was trained with (``Feature.dtype``):
        categories held as strings go back to integer codes, ``object`` text stays text and
        missing cells stay missing. Columns without a declared dtype are left as they are."""
        if not isinstance(X, pd.DataFrame):
            return X
        todo = [f for f in self.features if f.dtype and f.name in X.columns
                and str(X[f.name].dtype) != f.dtype]
        if not todo:
            return X
        out = X.copy()
        for f in todo:
            out[f.name] = _cast(out[f.name], str(f.dtype), f.name)
        return out

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
                if f.type != FeatureType.NUMERIC:  # missing cells stay missing
                    out[f.name] = arr.round() if arr.isna().any() else arr.round().astype(int)
                else:
                    out[f.name] = arr
        return out



def _cast(col: pd.Series, dtype: str, name: str) -> pd.Series:
    """``col`` in ``dtype``, missing cells kept missing (an integer column with missing cells
    cannot be int64: it becomes float64, as pandas reads it from a CSV)."""
    isna = col.isna()
    if dtype in ("object", "str", "string"):
        return col.astype(object).where(~isna, np.nan)
    try:
        if np.dtype(dtype).kind in "iu":
            num = pd.to_numeric(col, errors="raise")
            return num.astype(dtype) if not isna.any() else num.astype(float)
        if np.dtype(dtype).kind == "f":
            return pd.to_numeric(col, errors="raise").astype(dtype)
        return col.astype(dtype)
    except (ValueError, TypeError):
        raise DataError(f"column {name!r}: cannot give the model {dtype} values (first: "
                        f"{col[~isna].iloc[0]!r}); fix the schema's dtype") from None


# -- the one numeric encoding ---------------------------------------------------------------------
#: Without a schema, the most one-hot columns :func:`preprocessor` gives a categorical column
#: (free text read as categories must not blow up the encoding).
MAX_LEVELS = 32


def preprocessor(
    schema: FeatureSchema | None = None,
    *,
    X: Any = None,
    categories: Literal["schema", "data"] = "schema",
    scale: bool = True,
) -> Any:
    """An unfitted scikit-learn transformer turning records into a dense float matrix: the one
    encoding of tabular records that models, surrogates, detectors and screens share.

    Output columns: each categorical field one-hot encoded (fields in schema order), then the
    numeric, integer and binary fields, standardised (``scale=True``) or passed through.

    Missing values are accepted in numeric and categorical columns alike (NaN, ``None``):
    a missing number is imputed with its column's median in the fitted data (0 if the column is
    missing at every fitted row); a missing category is a constant level of its own, with its
    own one-hot column when the fitted data had missing values there (``categories="data"``),
    otherwise encoded like an unknown category. An unknown category, one outside those known at
    fit, is ignored: all its field's one-hot columns are 0. On data without missing cells the
    imputation changes nothing. (The categorical side is the encoder's own handling of missing
    values, so a fitted preprocessor converts to ONNX.)

    ``categories="schema"``: the one-hot columns are the schema's categories, in its order, so
    every fit has the same width whatever its rows hold; ``"data"``: the categories seen in fit,
    sorted. Without a schema, ``X`` decides: for a DataFrame, its non-numeric columns are
    categorical (categories from the data) and the rest numeric; any other ``X`` is a numeric
    matrix, imputed and scaled. Such a column may be free text with thousands of distinct values,
    so without a schema each categorical column keeps at most :data:`MAX_LEVELS` one-hot columns:
    its ``MAX_LEVELS - 1`` most frequent values, every other value (and an unknown one) sharing
    the last column (scikit-learn's infrequent category); the width stays bounded whatever the
    number of rows or levels. With a schema, free-text fields are not encoded: give a schema
    without them (:meth:`FeatureSchema.tabular`), whose width the categories fix.

    Example:
        >>> import numpy as np, pandas as pd
        >>> schema = FeatureSchema(features=[
        ...     Feature(name="age", type="integer", min=18, max=75),
        ...     Feature(name="job", type="categorical", categories=["clerk", "owner"]),
        ... ])
        >>> X = pd.DataFrame({"age": [20, 40, np.nan], "job": ["clerk", None, "clerk"]})
        >>> preprocessor(schema, scale=False).fit_transform(X).tolist()
        [[1.0, 0.0, 20.0], [0.0, 0.0, 40.0], [1.0, 0.0, 30.0]]
        >>> preprocessor(schema, categories="data", scale=False).fit_transform(X).tolist()
        [[1.0, 0.0, 20.0], [0.0, 1.0, 40.0], [1.0, 0.0, 30.0]]
        >>> preprocessor(schema).fit(X).transform(pd.DataFrame({"age": [30], "job": ["?"]}))
        array([[0., 0., 0.]])
        >>> preprocessor(X=X).fit_transform(X).shape
        (3, 3)
        >>> titles = pd.DataFrame({"title": [f"job {i % 500}" for i in range(2000)]})
        >>> preprocessor(X=titles).fit_transform(titles).shape
        (2000, 32)
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder

    if categories not in ("schema", "data"):
        raise ConfigError("The 'categories' parameter of preprocessor must be one of ['schema', "
                          f"'data']. Got {categories!r} instead.")
    if schema is None:
        if X is None:
            raise ConfigError("preprocessor needs a schema or example records X; give one")
        if not isinstance(X, pd.DataFrame):
            return _numbers(scale)
        cat_names = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
        num_names = [c for c in X.columns if c not in cat_names]
        cat_values: Any = "auto"
        bounded: dict[str, Any] = {"max_categories": MAX_LEVELS,
                                   "handle_unknown": "infrequent_if_exist"}
    else:
        other = [f.name for f in schema.features
                 if f.type in (FeatureType.TEXT, FeatureType.IMAGE)]
        if other:
            raise ConfigError(f"preprocessor encodes tabular fields; {other} are text or image "
                              "fields: encode them with a model of their own")
        cats = schema.categorical()
        cat_names = [f.name for f in cats]
        num_names = [f.name for f in schema.numeric()]
        cat_values = ([list(f.categories or ()) for f in cats] if categories == "schema"
                      else "auto")
        bounded = {"handle_unknown": "ignore"}  # the schema's categories fix the width
    onehot = OneHotEncoder(categories=cat_values, sparse_output=False, **bounded)
    return ColumnTransformer(
        [("cat", onehot, cat_names), ("num", _numbers(scale), num_names)],
        sparse_threshold=0.0,
    )


def _numbers(scale: bool) -> Any:
    """Median imputation, then standard scaling (``scale``)."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    impute = SimpleImputer(strategy="median", keep_empty_features=True)
    return Pipeline([("impute", impute), ("scale", StandardScaler())]) if scale else impute
