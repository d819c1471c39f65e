"""Modify training data: generalise personal fields, suppress rare combinations, measure anonymity.

The paper's example: round ages to the nearest ten and incomes to the nearest million yen before
the model generator sees them. :class:`GeneraliseFields` is a scikit-learn transformer doing that
per field (rounding to a step, truncation to a band, grouping of categories); it reads the
:class:`~finmlsec.schema.FeatureSchema`'s personal fields when no rules are given.
:class:`Generalise` is the defence: it generalises the training data, drops records whose
combination of personal values is shared by fewer than ``k`` records, and returns a pipeline
(generaliser + model) so that inputs at prediction time are generalised the same way.
:class:`MondrianRecoding` is local recoding instead (Mondrian, LeFevre et al. 2006): numeric
quasi-identifiers are partitioned jointly by median cuts into cells of at least ``k`` records,
and each value is replaced by its cell's median, so every record is k-anonymous on them and
none is suppressed; ``Generalise(method="mondrian")`` uses it.
:func:`k_anonymity` and :func:`l_diversity` measure the result.

Example:
    >>> import pandas as pd
    >>> from finmlsec.defences.generalise import GeneraliseFields, k_anonymity
    >>> X = pd.DataFrame({"age": [23, 27, 31, 38, 44], "income": [4.2e6, 5.6e6, 6.1e6, 3.9e6, 8.8e6]})
    >>> g = GeneraliseFields(rules={"age": 10, "income": 1_000_000}).fit(X)
    >>> g.transform(X).values.tolist()
    [[20.0, 4000000.0], [30.0, 6000000.0], [30.0, 6000000.0], [40.0, 4000000.0], [40.0, 9000000.0]]
    >>> k_anonymity(X, ["age"]), k_anonymity(g.transform(X), ["age"])
    (1, 1)
    >>> k_anonymity(GeneraliseFields(rules={"age": "floor:30"}).fit_transform(X), ["age"])
    2
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin, clone
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted, validate_data

from finmlsec.defences._params import Int, OneOf, Satisfies, check_int
from finmlsec.defences.base import DEFENCES, Defence
from finmlsec.errors import ConfigError, DataError
from finmlsec.schema import FeatureSchema

Rule = float | int | str | dict[str, str]


def default_step(lo: float, hi: float) -> float:
    """A round step giving about five to ten bands over ``[lo, hi]`` (ages 18-75: 10).

    >>> default_step(18, 75), default_step(250, 20000)
    (10.0, 1000.0)
    """
    span = max(hi - lo, 1e-12)
    return float(10.0 ** math.floor(math.log10(span / 5.0)))


def default_band(lo: float, hi: float, integer: bool = True) -> float:
    """A band width cutting ``[lo, hi]`` into four bands, for a quasi-identifier such as a
    transaction's hour (0-23: 6, i.e. night, morning, afternoon, evening). An integer field's
    range holds ``n = hi - lo + 1`` values; the width is a whole number and leaves at most
    ``n // 2`` bands, so each band merges at least two values (weekday 0-6: 3, not 2, which
    would leave 4 of the 7 days as they were).

    >>> default_band(0, 23), default_band(0, 6), default_band(0.0, 1.0, integer=False)
    (6.0, 3.0, 0.25)
    """
    if integer:
        n = int(round(hi - lo)) + 1
        return float(max(1, math.ceil(n / max(1, min(4, n // 2)))))
    return max(hi - lo, 1e-12) / 4.0


def band_rule(f: Any, X: Any = None) -> str | None:
    """The default rule for the schema feature ``f`` if it is a numeric ``quasi_identifier``
    (``"band:WIDTH"``, :func:`default_band` of its range; a bound the schema leaves open is read
    from the column of ``X``), else None."""
    if not f.quasi_identifier or not f.is_numeric or f.type.value == "binary":
        return None
    lo, hi = f.min, f.max
    if (lo is None or hi is None) and X is not None and f.name in getattr(X, "columns", ()):
        col = pd.to_numeric(X[f.name], errors="coerce")
        lo = float(col.min()) if lo is None else lo
        hi = float(col.max()) if hi is None else hi
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    return f"band:{default_band(float(lo), float(hi), f.type.value == 'integer'):g}"


def _parse(owner: str, field: str, rule: Any) -> tuple[str, Any]:
    if isinstance(rule, dict):
        return "map", {str(k): str(v) for k, v in rule.items()}
    if isinstance(rule, int | float) and not isinstance(rule, bool) and rule > 0:
        return "round", float(rule)
    if isinstance(rule, str):
        kind, _, arg = rule.partition(":")
        if kind == "suppress" and not arg:
            return "suppress", None
        try:
            step = float(arg)
        except ValueError:
            step = -1.0
        if kind in ("round", "floor", "band") and step > 0:
            return kind, step
    raise ConfigError(
        f"The 'rules' parameter of {owner} has an invalid rule for field {field!r}: {rule!r}. "
        "Use a positive number (round to a multiple), 'round:STEP', 'floor:STEP' (truncate to "
        "bands), 'band:WIDTH' (bands from the field's minimum, each value replaced by its band's "
        "start), 'suppress' (drop the field's information), or a dict mapping categories to groups."
    )


def _as_frame(est: Any, X: Any, *, reset: bool, allow_nan: bool) -> tuple[pd.DataFrame, bool]:
    """``X`` checked the scikit-learn way (``n_features_in_``, ``feature_names_in_``, 0 samples or
    features, sparse refused; numpy arrays must be numeric, and finite unless ``allow_nan``), as a
    DataFrame (an array's columns are its positions) and whether it was one."""
    if isinstance(X, pd.DataFrame):
        validate_data(est, X, skip_check_array=True, reset=reset)
        name = type(est).__name__
        if X.shape[0] < 1:
            raise ValueError(f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of "
                             f"1 is required by {name}.")
        if X.shape[1] < 1:
            raise ValueError(f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of "
                             f"1 is required by {name}.")
        return X, True
    A = validate_data(est, X, reset=reset, ensure_all_finite="allow-nan" if allow_nan else True)
    return pd.DataFrame(A), False


def _position(owner: str, key: Any, X: pd.DataFrame, is_frame: bool) -> int:
    """A column key as a position: an int is a position (as in ``ColumnTransformer``), a string
    a DataFrame column name."""
    if isinstance(key, numbers.Integral) and not isinstance(key, bool):
        if 0 <= int(key) < X.shape[1]:
            return int(key)
        raise DataError(f"{owner}: column position {key} is out of range for {X.shape[1]} "
                        "feature(s)")
    if isinstance(key, str):
        if not is_frame:
            raise DataError(f"{owner}: column {key!r} is a name, but the input is an array "
                            "without column names; use integer positions or a DataFrame")
        if key in X.columns:
            return int(X.columns.get_loc(key))
    raise DataError(f"{owner}: rules name unknown column(s) [{key!r}]; columns: "
                    f"{list(X.columns)}")


def _finite(owner: str, X: pd.DataFrame, cols: list[Any], *, allow_nan: bool) -> None:
    for c in cols:
        v = pd.to_numeric(X[c], errors="raise").to_numpy(dtype=float)
        if np.isinf(v).any() or (not allow_nan and np.isnan(v).any()):
            what = "infinity" if allow_nan else "NaN or infinity"
            raise DataError(f"{owner}: Input X contains {what} in column {c!r}")


class GeneraliseFields(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Per-field generalisation of a DataFrame or numeric array.

    ``rules`` maps a column to a rule: a number or ``"round:STEP"`` rounds to the nearest
    multiple of STEP (age 27 -> 30 with 10), ``"floor:STEP"`` truncates to the band's lower
    edge (27 -> 20), ``"band:WIDTH"`` cuts the field's range into bands of WIDTH from its
    minimum (the schema's ``min``, else the fitted data's) and replaces each value by its band's
    start (hours with ``band:6``: 0-5 -> 0, ..., 18-23 -> 18; weekdays with ``band:5``: Monday
    to Friday -> 0, the weekend -> 5), so the result is always a value of the range,
    ``"suppress"`` replaces every value by the column's most common one, a dict
    maps categories to coarser groups (unlisted categories are kept). A column is a DataFrame
    column name (string) or a position (int, for arrays and DataFrames alike, as in
    ``ColumnTransformer``). With ``rules=None`` the schema's personal numeric fields are rounded
    to :func:`default_step` of their range and its numeric ``quasi_identifier`` fields (the
    time of a transaction) cut into :func:`default_band` bands; with neither rules nor schema ``fit`` raises a
    ``ConfigError`` (no silent identity: a generaliser that generalises nothing is a mistake).
    Results are clipped to the schema's range, so generalised data still validate. Missing
    values (NaN) stay missing; infinite values are refused. A DataFrame comes back as a
    DataFrame with the same columns (integer columns stay integers when the results are whole),
    an array as an array.

    Example:
        >>> import pandas as pd
        >>> X = pd.DataFrame({"job": ["clerk", "manager", "owner"], "age": [34, 35, 71]})
        >>> rules = {"job": {"manager": "senior", "owner": "senior"}, "age": "floor:10"}
        >>> GeneraliseFields(rules=rules).fit_transform(X).values.tolist()
        [['clerk', 30], ['senior', 30], ['senior', 70]]
        >>> GeneraliseFields(rules={1: 10}).fit_transform(np.array([[1.5, 27.0]])).tolist()
        [[1.5, 30.0]]
        >>> T = pd.DataFrame({"hour": [0, 5, 6, 23], "day_of_week": [0, 4, 5, 6]})
        >>> GeneraliseFields(rules={"hour": "band:6", "day_of_week": "band:5"}).fit_transform(
        ...     T).values.tolist()
        [[0, 0], [0, 0], [6, 5], [18, 5]]
    """

    def __init__(self, *, rules: dict[Any, Rule] | None = None,
                 schema: FeatureSchema | None = None) -> None:
        self.rules = rules
        self.schema = schema

    def _resolve(self, X: pd.DataFrame, is_frame: bool) -> dict[Any, tuple[str, Any]]:
        name = type(self).__name__
        if self.rules is not None:
            if not isinstance(self.rules, dict):
                raise ConfigError(
                    f"The 'rules' parameter of {name} must be a dict or None. "
                    f"Got {self.rules!r} instead."
                )
            for c in self.rules:
                _position(name, c, X, is_frame)
            return {c: _parse(name, c, r) for c, r in self.rules.items()}
        if self.schema is None:
            raise ConfigError(
                f"{name} needs 'rules' or a 'schema' with personal fields to generalise; got "
                "neither"
            )
        out: dict[Any, tuple[str, Any]] = {}
        for f in self.schema.personal():
            if f.is_numeric and f.type.value != "binary" and is_frame and f.name in X.columns:
                lo = f.min if f.min is not None else float(X[f.name].min())
                hi = f.max if f.max is not None else float(X[f.name].max())
                out[f.name] = ("round", default_step(lo, hi))
        for f in self.schema.features:
            rule = band_rule(f, X) if is_frame and f.name in X.columns else None
            if rule is not None and f.name not in out:
                out[f.name] = _parse(name, f.name, rule)
        return out

    def fit(self, X: Any, y: Any = None) -> GeneraliseFields:
        name = type(self).__name__
        Xf, is_frame = _as_frame(self, X, reset=True, allow_nan=True)
        self.plan_ = self._resolve(Xf, is_frame)
        self.positions_ = {c: _position(name, c, Xf, is_frame) for c in self.plan_}
        for c, (kind, _) in self.plan_.items():
            if kind == "map" and not is_frame:
                raise ConfigError(f"{name}: the category rule for column {c!r} needs a DataFrame; "
                                  "a numpy array here is numeric")
        cols = [Xf.columns[self.positions_[c]] for c, (k, _) in self.plan_.items()
                if k in ("round", "floor", "band")]
        _finite(name, Xf, cols, allow_nan=True)
        self.origins_ = {c: self._origin(Xf, c) for c, (k, _) in self.plan_.items()
                         if k == "band"}
        self.modes_ = {c: Xf.iloc[:, self.positions_[c]].mode(dropna=True).iloc[0]
                       for c, (k, _) in self.plan_.items() if k == "suppress"}
        return self

    def _origin(self, Xf: pd.DataFrame, key: Any) -> float:
        """Where a ``band`` rule's bands start: the schema's ``min`` of the field, else the
        smallest value seen in fit (0 when the column is all missing)."""
        col = Xf.columns[self.positions_[key]]
        if self.schema is not None and col in self.schema.names and (
                self.schema[col].min is not None):
            return float(self.schema[col].min)  # type: ignore[arg-type]
        lo = pd.to_numeric(Xf[col], errors="raise").min()
        return 0.0 if pd.isna(lo) else float(lo)

    def transform(self, X: Any) -> Any:
        check_is_fitted(self, "plan_")
        name = type(self).__name__
        Xf, is_frame = _as_frame(self, X, reset=False, allow_nan=True)
        out = Xf.copy()
        for key, (kind, arg) in self.plan_.items():
            col = Xf.columns[self.positions_[key]]
            if kind == "map":
                if not is_frame:
                    raise ConfigError(f"{name}: the category rule for column {key!r} needs a "
                                      "DataFrame")
                out[col] = out[col].astype(str).map(lambda v, m=arg: m.get(v, v))
                continue
            if kind == "suppress":
                out[col] = self.modes_[key]
                continue
            _finite(name, Xf, [col], allow_nan=True)
            v = pd.to_numeric(out[col], errors="raise").astype(float)
            if kind == "band":
                o = self.origins_[key]
                g = o + np.floor((v - o) / arg) * arg  # the band's start: never outside the range
            else:
                g = np.floor(v / arg + 0.5) * arg if kind == "round" else np.floor(v / arg) * arg
            if self.schema is not None and col in self.schema.names:
                f = self.schema[col]
                g = g.clip(lower=f.min, upper=f.max)
            out[col] = g.astype(Xf[col].dtype) if pd.api.types.is_integer_dtype(Xf[col]) and (
                np.all(np.mod(g, 1) == 0)) else g
        return out if is_frame else out.to_numpy()

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


class MondrianRecoding(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Local recoding of numeric quasi-identifiers (Mondrian, LeFevre et al. 2006).

    ``fit`` cuts the training records recursively at the median of the column with the widest
    range (relative to the column's whole range), as long as both sides keep at least ``k``
    records; ``transform`` routes each record (training or query) to its cell and replaces
    every column of ``columns`` by the cell's median of the training values (integers stay
    integers; clipped to the schema's range). The training data are then k-anonymous on
    ``columns`` without suppressing any record; coarser cells where data are sparse, finer where
    they are dense. ``cells_`` is the number of cells.

    ``columns`` are DataFrame column names or positions (ints, also for numpy arrays); by
    default the schema's personal numeric fields, or without a schema every numeric column
    (``columns_`` holds the choice). The recoded values must be finite (NaN and infinity are
    refused). A DataFrame comes back as a DataFrame with the same columns and dtypes, an array
    as an array.

    Example:
        >>> import pandas as pd
        >>> X = pd.DataFrame({"age": [21, 25, 33, 38, 47, 52, 61, 70],
        ...                   "income": [10, 30, 20, 40, 35, 50, 45, 60]})
        >>> m = MondrianRecoding(columns=["age", "income"], k=2).fit(X)
        >>> m.cells_, k_anonymity(m.transform(X), ["age", "income"])
        (4, 2)
        >>> m.transform(X)["age"].tolist()
        [27, 32, 27, 32, 54, 61, 54, 61]
        >>> MondrianRecoding(k=2).fit_transform(X.to_numpy())[:, 0].tolist()
        [27, 32, 27, 32, 54, 61, 54, 61]
    """

    def __init__(self, *, columns: list[Any] | None = None, k: int = 5,
                 schema: FeatureSchema | None = None) -> None:
        self.columns = columns
        self.k = k
        self.schema = schema

    def _values(self, Xf: pd.DataFrame) -> np.ndarray:
        cols = [Xf.columns[j] for j in self.positions_]
        _finite(type(self).__name__, Xf, cols, allow_nan=False)
        return np.column_stack([pd.to_numeric(Xf[c], errors="raise").to_numpy(dtype=float)
                                for c in cols])

    def fit(self, X: Any, y: Any = None) -> MondrianRecoding:
        name = type(self).__name__
        check_int(name, "k", self.k, 1, None)
        Xf, is_frame = _as_frame(self, X, reset=True, allow_nan=False)
        if self.columns is not None:
            cols = list(self.columns)
        elif self.schema is not None:
            cols = [f.name for f in self.schema.personal()
                    if f.is_numeric and f.type.value != "binary"]
        else:
            cols = [c if is_frame else int(c) for c in Xf.columns
                    if pd.api.types.is_numeric_dtype(Xf[c])
                    and not pd.api.types.is_bool_dtype(Xf[c])]
        if not cols:
            raise ConfigError(f"{name}: no numeric columns to recode; name them in 'columns' "
                              "or give a 'schema' with personal numeric fields")
        missing = [c for c in cols if not (
            (isinstance(c, numbers.Integral) and 0 <= int(c) < Xf.shape[1])
            or (is_frame and isinstance(c, str) and c in Xf.columns))]
        if missing:
            raise DataError(f"{name}: columns {missing} are not in the data "
                            f"({list(Xf.columns)})")
        self.columns_ = cols
        self.positions_ = [_position(name, c, Xf, is_frame) for c in cols]
        V = self._values(Xf)
        if len(V) < self.k:
            raise DataError(f"{name}: {len(V)} records (n_samples={len(V)}) cannot form a cell "
                            f"of k={self.k}; lower k or fit on more records")
        span = V.max(axis=0) - V.min(axis=0)
        span[span == 0] = 1.0
        nodes: list[tuple[int, float, int, int]] = []  # (column, cut, left, right); -1 = leaf
        medians: list[np.ndarray] = []

        def grow(idx: np.ndarray) -> int:
            widths = (V[idx].max(axis=0) - V[idx].min(axis=0)) / span
            for j in np.argsort(-widths, kind="stable"):
                cut = float(np.median(V[idx, j]))
                left, right = idx[V[idx, j] <= cut], idx[V[idx, j] > cut]
                if len(left) >= self.k and len(right) >= self.k:
                    me = len(nodes)
                    nodes.append((int(j), cut, -1, -1))
                    lo, hi = grow(left), grow(right)
                    nodes[me] = (int(j), cut, lo, hi)
                    return me
            nodes.append((-1, float(len(medians)), -1, -1))
            medians.append(np.median(V[idx], axis=0))
            return len(nodes) - 1

        grow(np.arange(len(V)))
        self.nodes_ = nodes
        self.medians_ = np.asarray(medians)
        self.cells_ = len(medians)
        return self

    def _cell(self, Xf: pd.DataFrame) -> np.ndarray:
        V = self._values(Xf)
        node = np.zeros(len(V), dtype=int)
        out = np.full(len(V), -1)
        todo = np.arange(len(V))
        while len(todo):
            j, cut, lo, hi = (np.array([self.nodes_[n][i] for n in node[todo]]) for i in range(4))
            leaf = j < 0
            out[todo[leaf]] = cut[leaf].astype(int)
            todo, j, cut, lo, hi = todo[~leaf], j[~leaf].astype(int), cut[~leaf], lo[~leaf], hi[~leaf]
            go_left = V[todo, j] <= cut
            node[todo] = np.where(go_left, lo, hi).astype(int)
        return out

    def cell(self, X: Any) -> np.ndarray:
        """The cell index of each record."""
        check_is_fitted(self, "nodes_")
        return self._cell(_as_frame(self, X, reset=False, allow_nan=False)[0])

    def transform(self, X: Any) -> Any:
        check_is_fitted(self, "nodes_")
        Xf, is_frame = _as_frame(self, X, reset=False, allow_nan=False)
        R = self.medians_[self._cell(Xf)]
        out = Xf.copy()
        for i, j in enumerate(self.positions_):
            col = Xf.columns[j]
            g = pd.Series(R[:, i], index=Xf.index)
            if self.schema is not None and col in self.schema.names:
                f = self.schema[col]
                g = g.clip(lower=f.min, upper=f.max)
            if pd.api.types.is_integer_dtype(Xf[col]):
                g = np.floor(g + 0.5).astype(Xf[col].dtype)
            else:
                g = g.astype(Xf[col].dtype)
            out[col] = g
        return out if is_frame else out.to_numpy()


def _groups(X: pd.DataFrame, qi: list[str]) -> pd.Series:
    missing = [c for c in qi if c not in X.columns]
    if missing or not qi:
        raise DataError(f"quasi-identifiers {missing or qi} are not columns of the data "
                        f"({list(X.columns)})")
    return X.groupby(qi, dropna=False, observed=True).ngroup()


def k_anonymity(X: pd.DataFrame, quasi_identifiers: list[str]) -> int:
    """Size of the smallest group of records sharing their quasi-identifier values."""
    return int(_groups(X, quasi_identifiers).value_counts().min())


def l_diversity(X: pd.DataFrame, quasi_identifiers: list[str], sensitive: Any) -> int:
    """Fewest distinct sensitive values within a quasi-identifier group (distinct l-diversity);
    ``sensitive`` is a column name or an array aligned with ``X`` (e.g. the labels).

    >>> X = pd.DataFrame({"age": [20, 20, 30, 30]})
    >>> l_diversity(X, ["age"], [0, 1, 1, 1])
    1
    """
    s = X[sensitive] if isinstance(sensitive, str) else pd.Series(np.asarray(sensitive),
                                                                  index=X.index)
    return int(s.groupby(_groups(X, quasi_identifiers)).nunique().min())


@dataclass(frozen=True)
class GeneralisationReport:
    """What generalisation did to the training data."""

    quasi_identifiers: tuple[str, ...]
    k_before: int
    k_after: int
    l_before: int
    l_after: int
    rows_suppressed: int
    rows_kept: int


@DEFENCES.register("generalise.fields")
class Generalise(Defence):
    """The defence: generalise personal fields, suppress rare combinations, fit the model.

    ``quasi_identifiers`` defaults to the schema's personal and ``quasi_identifier`` fields (or
    the rules' fields).
    ``method="rules"``: :class:`GeneraliseFields` with ``rules``, then records whose generalised
    combination is shared by fewer than ``k`` records are dropped (``k=1`` keeps all).
    ``method="mondrian"``: :class:`MondrianRecoding` of the numeric quasi-identifiers into cells
    of at least ``k`` records (local recoding: nothing is suppressed; ``rules`` must be None).
    ``fit`` fits a clone of ``estimator`` on what is left; ``pipeline_`` is
    ``Pipeline([generalise, model])`` (inputs at prediction time are generalised the same way),
    ``generaliser_`` its first step; ``report_`` holds k-anonymity and l-diversity (of the
    labels) before and after.

    Example:
        >>> from finmlsec.datasets.base import load
        >>> from sklearn.tree import DecisionTreeClassifier
        >>> d = load("german_credit")
        >>> num = d.X[["age", "credit_amount", "duration_months"]]
        >>> g = Generalise(DecisionTreeClassifier(max_depth=3, random_state=0), schema=d.schema, k=5)
        >>> g = g.fit(num, d.y)
        >>> g.report_.k_after >= 5, g.report_.k_before
        (True, 1)
        >>> sorted(g.generaliser_.transform(num)["age"].unique().tolist())
        [20, 30, 40, 50, 60, 70, 75]
    """

    countermeasure: ClassVar[str] = "modify_training_data"
    counters: ClassVar[frozenset[str]] = frozenset({"infer_training_data"})
    stage: ClassVar[str] = "training_data"
    summary: ClassVar[str] = "generalise personal fields (round, truncate, group), suppress rare rows"
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "rules": [Satisfies(lambda v: isinstance(v, dict), "a dict"), None],
        "k": [Int(1)], "method": [OneOf(("rules", "mondrian"))],
        "quasi_identifiers": [Satisfies(lambda v: isinstance(v, list | tuple), "a list"), None],
    }
    #: it generalises named personal fields of a DataFrame (from ``rules`` or the schema) and
    #: refuses to generalise nothing: scikit-learn's checks fit it on anonymous numeric arrays
    _sklearn_check_deviations: ClassVar[dict[str, str]] = dict.fromkeys((
        "check_fit_score_takes_y",
        "check_estimators_overwrite_params",
        "check_dont_overwrite_parameters",
        "check_estimators_fit_returns_self",
        "check_readonly_memmap_input",
        "check_n_features_in_after_fitting",
        "check_positive_only_tag_during_fit",
        "check_estimators_dtypes",
        "check_dtype_object",
        "check_pipeline_consistency",
        "check_estimators_nan_inf",
        "check_estimator_sparse_tag",
        "check_estimators_pickle",
        "check_f_contiguous_array_estimator",
        "check_classifier_data_not_an_array",
        "check_classifiers_one_label",
        "check_classifiers_one_label_sample_weights",
        "check_classifiers_classes",
        "check_classifiers_train",
        "check_supervised_y_2d",
        "check_methods_sample_order_invariance",
        "check_methods_subset_invariance",
        "check_fit2d_1sample",
        "check_fit2d_1feature",
        "check_dict_unchanged",
        "check_fit_idempotent",
        "check_fit_check_is_fitted",
        "check_n_features_in",
        "check_fit2d_predict1d",
    ), "works on a DataFrame of named personal fields (rules or a schema); the checks give "
       "anonymous numeric arrays and no fields to generalise")

    def __init__(self, estimator: Any = None, *, rules: dict[str, Rule] | None = None,
                 schema: FeatureSchema | None = None, k: int = 1,
                 quasi_identifiers: list[str] | None = None, method: str = "rules") -> None:
        self.estimator = estimator
        self.rules = rules
        self.schema = schema
        self.k = k
        self.quasi_identifiers = quasi_identifiers
        self.method = method

    def _fit(self, X: Any, y: Any, **fit_params: Any) -> None:
        """Generalise ``X``, drop rare combinations, fit a clone of ``estimator`` on the rest."""
        gen, Xk, yk, self.report_ = self._generalise(X, y)
        model = clone(self._inner()).fit(Xk, yk, **fit_params)
        self.generaliser_ = gen
        self.pipeline_ = Pipeline([("generalise", gen), ("model", model)])
        self._adopt(model)

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "pipeline_")
        return np.asarray(self.pipeline_.predict(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "pipeline_")
        return np.asarray(self.pipeline_.predict_proba(X))

    def _generalise(self, X: pd.DataFrame, y: Any
                    ) -> tuple[Any, pd.DataFrame, np.ndarray, GeneralisationReport]:
        """Generalise and suppress: the fitted generaliser, the kept rows and the report."""
        name = type(self).__name__
        gen: GeneraliseFields | MondrianRecoding
        if self.method == "mondrian":
            if self.rules is not None:
                raise ConfigError(f"{name}: method='mondrian' recodes the quasi-identifiers "
                                  "itself; 'rules' must be None")
            cols = None if self.quasi_identifiers is None else [
                c for c in self.quasi_identifiers if c in X.columns
                and pd.api.types.is_numeric_dtype(X[c])]
            gen = MondrianRecoding(columns=cols, k=self.k, schema=self.schema).fit(X)
            qi = list(gen.columns_)
        else:
            gen = GeneraliseFields(rules=self.rules, schema=self.schema).fit(X)
        Xg = gen.transform(X)
        if self.method == "rules":
            qi = self._rules_qi(X, gen)
        y = np.asarray(y)
        keep = self._kept(Xg, qi)
        Xk = Xg.loc[keep].reset_index(drop=True)
        report = GeneralisationReport(
            quasi_identifiers=tuple(qi),
            k_before=k_anonymity(X, qi), k_after=k_anonymity(Xk, qi) if len(Xk) else 0,
            l_before=l_diversity(X, qi, y), l_after=l_diversity(Xk, qi, y[keep]) if len(Xk) else 0,
            rows_suppressed=int((~keep).sum()), rows_kept=int(keep.sum()),
        )
        if not keep.any():
            raise DataError(f"{type(self).__name__}: every record was suppressed at k={self.k}; "
                            "generalise more coarsely or lower k")
        return gen, Xk, y[keep], report

    def _rules_qi(self, X: pd.DataFrame, gen: Any) -> list[str]:
        if self.quasi_identifiers is not None:
            return list(self.quasi_identifiers)
        if self.schema is not None:
            return [f.name for f in self.schema.features
                    if (f.personal or f.quasi_identifier) and f.name in X.columns]
        return list(gen.plan_)

    def _kept(self, Xg: pd.DataFrame, qi: list[str]) -> np.ndarray:
        """Which generalised records are kept (their combination shared by ``k`` or more)."""
        keep = np.ones(len(Xg), dtype=bool)
        if self.k > 1 and self.method == "rules":
            groups = _groups(Xg, qi).to_numpy()
            sizes = np.bincount(groups)
            keep = sizes[groups] >= self.k
        return keep

    def release(self, X: Any, y: Any = None) -> tuple[pd.DataFrame, np.ndarray | None, np.ndarray]:
        """The training data ``(X, y)`` as this fitted defence hands them to the model
        generator (what a party holding the shared data sees): generalised by ``generaliser_``,
        rare combinations suppressed; with the position in ``X`` of each record kept.

        Example:
            >>> from sklearn.tree import DecisionTreeClassifier
            >>> X = pd.DataFrame({"age": [23, 27, 31, 38, 44, 45]})
            >>> g = Generalise(DecisionTreeClassifier(), rules={"age": "floor:10"}, k=2)
            >>> Xr, yr, rows = g.fit(X, [0, 1, 0, 1, 0, 1]).release(X, [0, 1, 0, 1, 0, 1])
            >>> Xr["age"].tolist(), rows.tolist()
            ([20, 20, 30, 30, 40, 40], [0, 1, 2, 3, 4, 5])
        """
        check_is_fitted(self, "generaliser_")
        Xg = self.generaliser_.transform(X)
        qi = list(self.generaliser_.columns_) if self.method == "mondrian" else self._rules_qi(
            X, self.generaliser_)
        keep = self._kept(Xg, qi)
        rows = np.flatnonzero(keep)
        return (Xg.loc[keep].reset_index(drop=True),
                None if y is None else np.asarray(y)[keep], rows)
