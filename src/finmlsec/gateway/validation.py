"""Input validation at the gateway boundary, from the feature schema: one path for both forms.

A request's records arrive as objects (``records``: a list of ``{field: value}``) or as a
column batch (``columns`` and rows of ``data``). :class:`InputValidator` checks the shape of
either form, turns it into columns, and checks every column with the same rules: unknown and
missing fields, types (a boolean, a string such as ``"2835"`` or a list is not a number; a number
or a list is not a category), NaN and infinities, whole numbers, ranges and categories. A column
of many values is checked with vectorised operations first; any value those do not plainly
accept is checked (and converted, or refused) one by one, so both give the same answer.

Every problem is an :class:`InputProblem` (HTTP 422) naming the record, the field, the rule and
the value received; its ``redacted`` form names the record, field and rule only, for the audit
log (which must not hold personal values).

Example:
    >>> from finmlsec.schema import Feature, FeatureSchema
    >>> schema = FeatureSchema(features=(Feature(name="age", type="integer", min=18, max=75),
    ...                                  Feature(name="job", type="categorical", categories=("a", "b"))))
    >>> v = InputValidator(schema)
    >>> v.records([{"age": 30, "job": "a"}]).record(0)
    {'age': 30, 'job': 'a'}
    >>> v.columns(["job", "age"], [["b", 40.0]]).record(0)
    {'age': 40, 'job': 'b'}
    >>> try:
    ...     v.columns(["job", "age"], [["b", "40"]])
    ... except InputProblem as exc:
    ...     print(exc); print(exc.redacted)
    record 0, field 'age': expected a number; got '40'
    record 0, field 'age': expected a number
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from finmlsec.errors import DataError
from finmlsec.schema import FeatureSchema, FeatureType

_BIG = 1.7976931348623157e308  # finite floats lie strictly inside (-_BIG, _BIG) or at its ends
_EXACT = 2**53  # integers a float represents exactly
_NUMBER_TYPES = frozenset({int, float})
_NO_VALUE = object()


class _Missing:
    """A field absent from a record."""


MISSING = _Missing()


class InputProblem(DataError):
    """The request's records do not satisfy the schema (HTTP 422). ``str(exc)`` is for the
    client (it may quote the value it sent); ``redacted`` names the place and the rule only."""

    def __init__(self, message: str, redacted: str | None = None) -> None:
        super().__init__(message)
        self.redacted = message if redacted is None else redacted


def _fail(where: str, rule: str, value: Any = _NO_VALUE) -> InputProblem:
    if value is _NO_VALUE:
        return InputProblem(f"{where}: {rule}")
    return InputProblem(f"{where}: {rule}; got {short(value)}", f"{where}: {rule}")


@dataclass(frozen=True)
class Valid:
    """Validated records as columns (feature name -> values: a list, a float array, or for a
    categorical column of a large batch a :class:`~finmlsec.gateway.fastpath.Coded`)."""

    columns: dict[str, Any]
    n: int

    def __len__(self) -> int:
        return self.n

    def record(self, i: int) -> dict[str, Any]:
        """Record ``i`` as a dict of plain Python values (JSON-serialisable)."""
        return {k: _plain(c[i]) for k, c in self.columns.items()}

    def frame(self) -> pd.DataFrame:
        """The records as a DataFrame in schema column order (pandas infers the dtypes)."""
        from finmlsec.gateway.fastpath import Coded

        return pd.DataFrame({k: c.values if isinstance(c, Coded) else c
                             for k, c in self.columns.items()})

    @staticmethod
    def concat(parts: Sequence[Valid]) -> Valid:
        """Several small validated batches as one (the micro-batcher's model call)."""
        if len(parts) == 1:
            return parts[0]
        names = list(parts[0].columns)
        return Valid({k: [v for p in parts for v in p.columns[k]] for k in names},
                     sum(p.n for p in parts))


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


class InputValidator:
    """Validate records or column batches against a :class:`FeatureSchema` (see the module
    docstring). ``vector_rows``: columns longer than this are checked vectorised first."""

    def __init__(self, schema: FeatureSchema, *, vector_rows: int = 64) -> None:
        self.schema = schema
        self.names = schema.names
        self.vector_rows = vector_rows
        self._known = set(self.names)
        # row ids the model does not read: a client may send them; they are dropped
        self._ignored = frozenset(schema.dropped_ids)
        inf = math.inf
        # per feature: (name, kind, categories, min, max, feature); a value that passes these
        # checks is kept as is, anything else goes through _value (its conversion or error)
        self._plan = []
        for f in schema.features:
            kind = ("cat" if f.type == FeatureType.CATEGORICAL else
                    "other" if f.type in (FeatureType.TEXT, FeatureType.IMAGE) else
                    "int" if f.type == FeatureType.INTEGER else
                    "bin" if f.type == FeatureType.BINARY else "num")
            lo = -inf if f.min is None or kind == "cat" else float(f.min)
            hi = inf if f.max is None or kind == "cat" else float(f.max)
            if kind == "bin":
                lo, hi = max(lo, 0.0), min(hi, 1.0)
            self._plan.append((f.name, kind, frozenset(f.categories or ()), lo, hi, f))

    # -- the two forms ------------------------------------------------------------------------------
    def records(self, records: Any) -> Valid:
        """The record form: a list of objects keyed by field name."""
        if not isinstance(records, list):
            raise InputProblem("'records' must be a list of objects")
        known, width = self._known, len(self._known)
        for i, rec in enumerate(records):
            if type(rec) is not dict:
                raise InputProblem(f"record {i}: expected an object of fields, got "
                                   f"{_kind(rec)}")
            if len(rec) != width or not known.issuperset(rec):
                extra = [k for k in rec if k not in known and k not in self._ignored]
                if extra:
                    raise InputProblem(
                        f"record {i}: unknown field(s) {short(sorted(extra))}; the model takes "
                        f"{self.names}", f"record {i}: {len(extra)} unknown field(s)")
        return self._check({n: [r.get(n, MISSING) for r in records] for n in self.names},
                           len(records))

    def columns(self, columns: Any, data: Any) -> Valid:
        """The column form: field names, and rows of values in that order."""
        if not isinstance(columns, list) or not all(type(c) is str for c in columns):
            raise InputProblem("'columns' must be a list of field names (strings)")
        if len(set(columns)) != len(columns):
            raise InputProblem("'columns' has duplicates (each field once)")
        if not isinstance(data, list) or not all(type(r) is list for r in data):
            raise InputProblem("'data' must be a list of rows (lists of values)")
        width = len(columns)
        bad = next((i for i, r in enumerate(data) if len(r) != width), None)
        if bad is not None:
            raise InputProblem(f"row {bad} has {len(data[bad])} values for {width} columns")
        extra = [c for c in columns if c not in self._known and c not in self._ignored]
        if extra:
            raise InputProblem(f"unknown field(s) {short(sorted(extra))} in 'columns'; the "
                               f"model takes {self.names}", f"{len(extra)} unknown field(s)")
        n = len(data)
        by_name: dict[str, Sequence[Any]] = (
            dict(zip(columns, zip(*data, strict=True), strict=True)) if n else
            {c: () for c in columns})
        return self._check({name: by_name.get(name, [MISSING] * n) for name in self.names}, n)

    # -- one check per column -------------------------------------------------------------------------
    def _check(self, cols: dict[str, Sequence[Any]], n: int) -> Valid:
        out: dict[str, Any] = {}
        for entry in self._plan:
            values = cols[entry[0]]
            fast = self._vector(entry, values) if n > self.vector_rows else None
            out[entry[0]] = fast if fast is not None else self._each(entry, values)
        return Valid(out, n)

    def _each(self, entry: tuple[Any, ...], values: Sequence[Any]) -> list[Any]:
        name, kind, cats, lo, hi, f = entry
        out = []
        for i, v in enumerate(values):
            t = type(v)
            if kind == "cat":
                ok = t is str and v in cats
            elif kind == "num":
                ok = (t is float or t is int) and lo <= v <= hi and -_BIG < v < _BIG
            elif kind == "int" or kind == "bin":  # a whole float here is converted by _value
                ok = t is int and lo <= v <= hi and -_EXACT < v < _EXACT
            else:
                ok = False
            out.append(v if ok else self._value(i, f, v))
        return out

    @staticmethod
    def _vector(entry: tuple[Any, ...], values: Sequence[Any]) -> Any:
        """The column as numpy values when every value is plainly valid, else None."""
        from finmlsec.gateway.fastpath import Coded

        _name, kind, cats, lo, hi, _f = entry
        if kind == "other":
            return None
        if kind == "cat":
            if not all(type(v) is str for v in values):
                return None
            arr = np.asarray(values, dtype=object)
            codes, uniques = pd.factorize(arr)
            if (codes < 0).any() or not all(u in cats for u in uniques):
                return None
            return Coded(arr, codes, uniques)
        if not set(map(type, values)) <= _NUMBER_TYPES:
            return None
        try:
            x = np.asarray(values, dtype=float)
        except (OverflowError, ValueError, TypeError):
            return None
        if not ((x >= lo) & (x <= hi) & (np.abs(x) < _EXACT)).all():
            return None  # NaN and infinities fail this too
        if kind != "num" and not (x == np.floor(x)).all():
            return None
        return x

    def _value(self, i: int, f: Any, v: Any) -> Any:
        """``v`` converted for feature ``f`` (a whole float for an integer), or the problem."""
        where = f"record {i}, field {f.name!r}"
        if v is MISSING:
            if f.nullable:
                return None
            raise InputProblem(f"record {i}: missing field {f.name!r}")
        if v is None:
            if f.nullable:
                return None
            raise _fail(where, "a value is required (got null)")
        t = f.type
        if t == FeatureType.CATEGORICAL:
            if not isinstance(v, str):
                raise _fail(where, "expected one of the categories (a string)", v)
            raise _fail(where, f"not an allowed category; allowed: {sorted(f.categories or ())}",
                        v)
        if t in (FeatureType.TEXT, FeatureType.IMAGE):
            raise _fail(where, f"{t.value} features are not served by the JSON API")
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise _fail(where, "expected a number", v)
        try:
            x = float(v)
        except OverflowError:  # an integer beyond the float range (JSON allows any length)
            raise _fail(where, "too large a number", v) from None
        if not math.isfinite(x):
            raise _fail(where, "NaN and infinite values are not allowed")
        if t in (FeatureType.INTEGER, FeatureType.BINARY):
            if x != math.floor(x):
                raise _fail(where, "expected a whole number", v)
            if t == FeatureType.BINARY and x not in (0.0, 1.0):
                raise _fail(where, "expected 0 or 1", v)
            if abs(x) >= _EXACT:
                raise _fail(where, "too large a whole number", v)
            v = int(x)
        if f.min is not None and x < f.min:
            raise _fail(where, f"below the minimum {f.min:g}", v)
        if f.max is not None and x > f.max:
            raise _fail(where, f"above the maximum {f.max:g}", v)
        return v


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


def _kind(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(v), "a number")


def short(v: Any, n: int = 80) -> str:
    s = repr(v)
    return s if len(s) <= n else s[: n - 3] + "..."
