"""Input validation at the gateway boundary, from the feature schema.

:class:`RecordValidator` checks JSON records (dicts) in plain Python, fast enough for one record
per request: unknown and missing fields, types (a boolean is not a number, a number is not a
category), NaN and infinities, whole numbers, ranges and categories. Large column-oriented batches
go through :meth:`FeatureSchema.check` on a DataFrame. Every problem is a :class:`InputProblem`
(HTTP 422) naming the row, the field, the value received and what is allowed.

Example:
    >>> from finmlsec.datasets.schema import Feature, FeatureSchema
    >>> schema = FeatureSchema(features=(Feature(name="age", type="integer", min=18, max=75),
    ...                                  Feature(name="job", type="categorical", categories=("a", "b"))))
    >>> v = RecordValidator(schema)
    >>> v.validate([{"age": 30, "job": "a"}])
    [{'age': 30, 'job': 'a'}]
    >>> v.validate([{"age": 30.5, "job": "a"}])
    Traceback (most recent call last):
    ...
    finmlsec.gateway.validation.InputProblem: record 0, field 'age': expected a whole number, got 30.5
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from finmlsec.datasets.schema import FeatureSchema, FeatureType
from finmlsec.errors import DataError

_BIG = 1.7976931348623157e308  # finite floats lie strictly inside (-_BIG, _BIG) or at its ends
_EXACT = 2**53  # integers a float represents exactly
_NUMBER_TYPES = frozenset({int, float})


class InputProblem(DataError):
    """The request's records do not satisfy the schema (HTTP 422)."""


class RecordValidator:
    """Validate records against a :class:`FeatureSchema` (see the module docstring)."""

    def __init__(self, schema: FeatureSchema) -> None:
        self.schema = schema
        self.names = schema.names
        self._known = set(self.names)
        self._features = list(schema.features)
        self._cats = {f.name: set(f.categories or ()) for f in schema.features}
        # per feature: (name, kind, categories, min, max, feature); a value that passes these
        # checks is returned as is, anything else goes through _value (its conversion or error)
        inf = math.inf
        self._plan = []
        for f in self._features:
            kind = ("cat" if f.type == FeatureType.CATEGORICAL else
                    "other" if f.type in (FeatureType.TEXT, FeatureType.IMAGE) else
                    "int" if f.type == FeatureType.INTEGER else
                    "bin" if f.type == FeatureType.BINARY else "num")
            lo = -inf if f.min is None or kind == "cat" else float(f.min)
            hi = inf if f.max is None or kind == "cat" else float(f.max)
            if kind == "bin":
                lo, hi = max(lo, 0.0), min(hi, 1.0)
            self._plan.append((f.name, kind, self._cats[f.name], lo, hi, f))

    def validate(self, records: Any) -> list[dict[str, Any]]:
        if not isinstance(records, list):
            raise InputProblem("'records' must be a list of objects")
        out = []
        for i, rec in enumerate(records):
            if not isinstance(rec, dict):
                raise InputProblem(f"record {i}: expected an object of fields, got {type(rec).__name__}")
            if len(rec) != len(self._known) or not self._known.issuperset(rec):
                extra = sorted(k for k in rec if k not in self._known)
                if extra:
                    raise InputProblem(
                        f"record {i}: unknown field(s) {_short(extra)}; the model takes {self.names}"
                    )
            clean: dict[str, Any] = {}
            for name, kind, cats, lo, hi, f in self._plan:
                if name not in rec:
                    if f.nullable:
                        clean[name] = None
                        continue
                    raise InputProblem(f"record {i}: missing field {name!r}")
                v = rec[name]
                t = type(v)
                if kind == "cat":
                    ok = t is str and v in cats
                elif kind == "num":
                    ok = (t is float or t is int) and lo <= v <= hi and -_BIG < v < _BIG
                elif kind == "int" or kind == "bin":  # a float here is converted by _value
                    ok = t is int and lo <= v <= hi and -_EXACT < v < _EXACT
                else:
                    ok = False
                clean[name] = v if ok else self._value(i, f, v)
            out.append(clean)
        return out

    def _value(self, i: int, f: Any, v: Any) -> Any:
        where = f"record {i}, field {f.name!r}"
        if v is None:
            if f.nullable:
                return None
            raise InputProblem(f"{where}: a value is required (got null)")
        t = f.type
        if t == FeatureType.CATEGORICAL:
            if not isinstance(v, str):
                raise InputProblem(f"{where}: expected one of the categories (a string), got {_short(v)}")
            if v not in self._cats[f.name]:
                raise InputProblem(
                    f"{where}: {_short(v)} is not an allowed category; allowed: {sorted(self._cats[f.name])}"
                )
            return v
        if t in (FeatureType.TEXT, FeatureType.IMAGE):
            raise InputProblem(f"{where}: {t.value} features are not served by the JSON API")
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise InputProblem(f"{where}: expected a number, got {_short(v)}")
        try:
            x = float(v)
        except OverflowError:  # an integer beyond the float range (JSON allows any length)
            raise InputProblem(f"{where}: {_short(v)} is too large a number") from None
        if not math.isfinite(x):
            raise InputProblem(f"{where}: NaN and infinite values are not allowed")
        if t in (FeatureType.INTEGER, FeatureType.BINARY):
            if x != math.floor(x):
                raise InputProblem(f"{where}: expected a whole number, got {v!r}")
            if t == FeatureType.BINARY and x not in (0.0, 1.0):
                raise InputProblem(f"{where}: expected 0 or 1, got {v!r}")
            v = int(x)
        if f.min is not None and x < f.min:
            raise InputProblem(f"{where}: {v!r} is below the minimum {f.min:g}")
        if f.max is not None and x > f.max:
            raise InputProblem(f"{where}: {v!r} is above the maximum {f.max:g}")
        return v

    def frame(self, records: list[dict[str, Any]]) -> pd.DataFrame:
        """Validated records as a DataFrame in schema column order."""
        return pd.DataFrame.from_records(records, columns=self.names)

    def columns_if_valid(self, columns: Any, data: Any) -> dict[str, Any] | None:
        """A column-oriented batch as numpy columns (categorical ones as
        :class:`~finmlsec.gateway.fastpath.Coded`) when every value is plainly valid, checked
        with vectorised operations; None when anything is unusual (a null, a wrong type, a value
        out of range...), for :meth:`validate_columns` to accept or name the problem. It accepts
        nothing :meth:`validate_columns` refuses."""
        from finmlsec.gateway.fastpath import Coded

        n_cols = len(self.names)
        if (not isinstance(columns, list) or len(columns) != n_cols
                or set(columns) != self._known or not isinstance(data, list) or not data):
            return None
        for r in data:
            if type(r) is not list or len(r) != n_cols:
                return None
        by_name = dict(zip(columns, zip(*data, strict=True), strict=True))
        out: dict[str, Any] = {}
        for name, kind, cats, lo, hi, _f in self._plan:
            col = by_name[name]
            if kind == "cat":
                values = np.asarray(col, dtype=object)
                codes, uniques = pd.factorize(values)
                if (codes < 0).any() or not all(type(u) is str and u in cats for u in uniques):
                    return None
                out[name] = Coded(values, codes, uniques)
                continue
            if kind == "other" or not set(map(type, col)) <= _NUMBER_TYPES:
                return None
            try:
                arr = np.asarray(col, dtype=float)
            except (OverflowError, ValueError, TypeError):
                return None
            if not ((arr >= lo) & (arr <= hi) & (np.abs(arr) < _EXACT)).all():
                return None  # NaN and infinities fail this too
            if kind != "num" and not (arr == np.floor(arr)).all():
                return None
            out[name] = arr
        return out

    def validate_columns(self, columns: Any, data: Any) -> pd.DataFrame:
        """A column-oriented batch (``columns`` + rows of values) as a validated DataFrame."""
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise InputProblem("'columns' must be a list of field names")
        if len(set(columns)) != len(columns):
            raise InputProblem(f"'columns' has duplicates: {_short(columns)}")
        if not isinstance(data, list) or not all(isinstance(r, list) for r in data):
            raise InputProblem("'data' must be a list of rows (lists of values)")
        bad = next((i for i, r in enumerate(data) if len(r) != len(columns)), None)
        if bad is not None:
            raise InputProblem(f"row {bad} has {len(data[bad])} values for {len(columns)} columns")
        X = pd.DataFrame(data, columns=columns)
        for f in self._features:  # categories must be strings, numbers must be numbers
            if f.name not in X.columns or X[f.name].dtype != object:
                continue
            col = X[f.name]
            if f.type == FeatureType.CATEGORICAL:
                wrong = ~col.map(lambda v: isinstance(v, str) or v is None).to_numpy(bool)
            else:
                wrong = ~col.map(
                    lambda v: v is None or (isinstance(v, int | float) and not isinstance(v, bool))
                ).to_numpy(bool)
            if wrong.any():
                i = int(wrong.argmax())
                raise InputProblem(f"row {i}, field {f.name!r}: wrong type {_short(col.iloc[i])}")
            if f.type != FeatureType.CATEGORICAL:  # integers beyond the float range (any length)
                huge = col.map(lambda v: isinstance(v, int) and abs(v) > _BIG).to_numpy(bool)
                if huge.any():
                    i = int(huge.argmax())
                    raise InputProblem(f"row {i}, field {f.name!r}: {_short(col.iloc[i])} is "
                                       "too large a number")
        try:
            self.schema.check(X)
        except DataError as exc:
            raise InputProblem(str(exc)) from None
        return X[self.names]


def record_json_schema(schema: FeatureSchema) -> dict[str, Any]:
    """JSON Schema of one record, for the OpenAPI document."""
    props: dict[str, Any] = {}
    for f in schema.features:
        if f.type == FeatureType.CATEGORICAL:
            p: dict[str, Any] = {"type": "string", "enum": list(f.categories or ())}
        elif f.type in (FeatureType.INTEGER, FeatureType.BINARY):
            p = {"type": "integer"}
        else:
            p = {"type": "number"}
        if f.type == FeatureType.BINARY:
            p.update(minimum=0, maximum=1)
        if f.min is not None and f.is_numeric:
            p["minimum"] = f.min
        if f.max is not None and f.is_numeric:
            p["maximum"] = f.max
        if f.description:
            p["description"] = f.description
        if f.nullable:
            p = {"anyOf": [p, {"type": "null"}]}
        props[f.name] = p
    return {
        "type": "object",
        "properties": props,
        "required": [f.name for f in schema.features if not f.nullable],
        "additionalProperties": False,
    }


def _short(v: Any, n: int = 80) -> str:
    s = repr(v)
    return s if len(s) <= n else s[: n - 3] + "..."
