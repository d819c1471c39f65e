"""Compiled hot paths: validated JSON records straight to numpy, without a pandas DataFrame.

A scikit-learn pipeline called on one record spends almost all its time in per-call overhead
(building the DataFrame, ``ColumnTransformer`` bookkeeping, parameter validation), and the input
screen's isolation forest walks its 100 trees one Python call at a time. For the common shapes
the gateway serves, this module compiles the fitted objects once into plain numpy functions:

- :func:`compile_column_transformer`: a fitted ``ColumnTransformer`` of ``OneHotEncoder``
  (no dropped categories; infrequent ones in scikit-learn's layout), ``StandardScaler``,
  ``"passthrough"`` and ``"drop"``, each number column optionally behind a ``SimpleImputer`` (as :func:`finmlsec.schema.preprocessor`
  builds it);
- :func:`compile_model`: a ``Pipeline`` of such a transformer and a final estimator with
  ``predict_proba`` (the final estimator is called on the dense matrix; a two-class
  ``LogisticRegression`` is itself compiled to a product and the logistic function);
- :func:`compile_isolation_forest`: every tree of a fitted ``IsolationForest`` flattened into
  arrays, traversed for all trees and rows at once;
- :func:`compile_screen`: :class:`~finmlsec.defences.input_screen.OODDetector` from the two.

Each compiler returns ``None`` for anything it does not recognise. :func:`verified` calls the
compiler and accepts the compiled function only if compiling succeeds and it reproduces the
original on reference data (to 1e-9), so the gateway falls back to the original objects rather
than ever answering differently or failing to start.
A compiled function takes ``columns``: a mapping from feature name to a sequence of values.

Example:
    >>> import numpy as np, pandas as pd
    >>> from sklearn.compose import ColumnTransformer
    >>> from sklearn.preprocessing import OneHotEncoder, StandardScaler
    >>> X = pd.DataFrame({"job": ["a", "b", "a"], "age": [20, 40, 60]})
    >>> ct = ColumnTransformer([("c", OneHotEncoder(), ["job"]), ("n", StandardScaler(), ["age"])])
    >>> f = compile_column_transformer(ct.fit(X))
    >>> f({"job": ["b"], "age": [40]}).tolist()
    [[0.0, 1.0, 0.0]]
    >>> f({"job": ["c"], "age": [40]})
    Traceback (most recent call last):
    ...
    finmlsec.gateway.fastpath.Unsupported: null or unknown category
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

Columns = Mapping[str, Sequence[Any]]
Compiled = Callable[[Columns], np.ndarray]


class Unsupported(Exception):
    """The batch has a value the compiled path does not handle (e.g. a null): use the original."""


class Coded:
    """A categorical column with its values factorised once (``codes`` into ``uniques``), so the
    model's and the screen's one-hot encoders of the same batch share the hashing."""

    __slots__ = ("codes", "uniques", "values")

    def __init__(self, values: np.ndarray, codes: np.ndarray, uniques: np.ndarray) -> None:
        self.values, self.codes, self.uniques = values, codes, uniques

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, i: Any) -> Any:
        return self.values[i]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.values if dtype is None else self.values.astype(dtype)


def records_to_columns(records: list[dict[str, Any]], names: Sequence[str]) -> dict[str, list[Any]]:
    """Validated records (dicts) as columns."""
    return {n: [r[n] for r in records] for n in names}


def _numbers(values: Sequence[Any]) -> np.ndarray:
    try:
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise Unsupported("null or non-numeric value") from None


def _onehot(enc: Any, cols: list[str]) -> Callable[[Columns], np.ndarray] | None:
    if getattr(enc, "drop_idx_", None) is not None:
        return None
    if enc.handle_unknown not in ("ignore", "infrequent_if_exist", "error"):
        return None
    strict = enc.handle_unknown == "error"  # the original raises: let it, on the slow path
    infrequent = (list(enc.infrequent_categories_) if getattr(enc, "_infrequent_enabled", False)
                  else [None] * len(enc.categories_))
    maps = []
    # per field, the column an unknown value goes to: its infrequent column where the encoder
    # has one and sends unknown values there, else none (-1: all zeros, or refused if strict)
    unknown_to: list[int] = []
    width = 0
    for cats, rare in zip(enc.categories_, infrequent, strict=True):
        if cats.dtype != object or any(not isinstance(c, str) for c in cats):
            return None
        if rare is None:
            maps.append({c: width + i for i, c in enumerate(cats)})
            unknown_to.append(-1)
            width += len(cats)
            continue
        # scikit-learn's layout: the frequent categories in order, then one infrequent column
        rare_set = set(rare.tolist())
        frequent = [c for c in cats if c not in rare_set]
        m = {c: width + i for i, c in enumerate(frequent)}
        m.update(dict.fromkeys(rare_set, width + len(frequent)))
        maps.append(m)
        unknown_to.append(width + len(frequent) if not strict else -1)
        width += len(frequent) + 1

    def run(columns: Columns) -> np.ndarray:
        n = len(columns[cols[0]])
        out = np.zeros((n, width))
        rows = np.arange(n)
        for name, m, unk in zip(cols, maps, unknown_to, strict=True):
            idx = _codes(columns[name], m, n)
            if (idx == -2).any() or (strict and (idx == -1).any()):
                raise Unsupported("null or unknown category")
            if unk >= 0:
                idx = np.where(idx == -1, unk, idx)
            ok = idx >= 0
            out[rows[ok], idx[ok]] = 1.0
        return out

    return run


def _codes(values: Sequence[Any], m: dict[str, int], n: int) -> np.ndarray:
    """Column position of each value's category; -1 unknown, -2 not a string."""
    if isinstance(values, Coded):
        if (values.codes < 0).any():
            raise Unsupported("null category")
        codes = np.fromiter((m.get(v, -1) if isinstance(v, str) else -2 for v in values.uniques),
                            dtype=np.intp, count=len(values.uniques))
        return codes[values.codes]
    if n <= 64:
        return np.fromiter((m.get(v, -1) if isinstance(v, str) else -2 for v in values),
                           dtype=np.intp, count=n)
    import pandas as pd

    inv, uniq = pd.factorize(np.asarray(values, dtype=object))  # hashing: each distinct once
    if (inv < 0).any():
        raise Unsupported("null category")
    codes = np.fromiter((m.get(v, -1) if isinstance(v, str) else -2 for v in uniq),
                        dtype=np.intp, count=len(uniq))
    return codes[inv]


def _scaler(sc: Any, cols: list[str]) -> Callable[[Columns], np.ndarray]:
    mean = sc.mean_ if sc.with_mean else None
    scale = sc.scale_ if sc.with_std else None

    def run(columns: Columns) -> np.ndarray:
        Z = np.column_stack([_numbers(columns[c]) for c in cols])
        if mean is not None:
            Z -= mean
        if scale is not None:
            Z /= scale
        return Z

    return run


def _passthrough(cols: list[str]) -> Callable[[Columns], np.ndarray]:
    return lambda columns: np.column_stack([_numbers(columns[c]) for c in cols])


def _imputed(tr: Any) -> tuple[np.ndarray | None, Any]:
    """A numeric ``SimpleImputer`` of NaN (alone, or first of a two-step pipeline) split off: its
    fill values and what follows it (``"passthrough"`` when alone); ``(None, tr)`` otherwise."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    steps = [s for _, s in tr.steps] if type(tr) is Pipeline else [tr]
    imp = steps[0]
    if type(imp) is not SimpleImputer or len(steps) > 2:
        return None, tr
    stats = np.asarray(getattr(imp, "statistics_", None), dtype=object)
    if (not isinstance(imp.missing_values, float) or not np.isnan(imp.missing_values)
            or getattr(imp, "add_indicator", True)
            or not all(isinstance(v, int | float | np.number) for v in stats)):
        return None, tr
    return stats.astype(float), steps[1] if len(steps) == 2 else "passthrough"


def _filled(part: Callable[[Columns], np.ndarray], fill: np.ndarray,
            scaler: Any = None) -> Callable[[Columns], np.ndarray]:
    """``part`` with missing numbers (NaN, None) first replaced by ``fill`` (scaled as ``part``
    scales them)."""
    if scaler is not None:
        fill = np.asarray(scaler.transform(fill.reshape(1, -1)), dtype=float).ravel()

    def run(columns: Columns) -> np.ndarray:
        Z = part(columns)
        missing = np.isnan(Z)
        return np.where(missing, fill, Z) if missing.any() else Z

    return run


def compile_column_transformer(ct: Any) -> Compiled | None:
    """A numpy function equivalent to ``ct.transform`` (dense), or None."""
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if not isinstance(ct, ColumnTransformer) or not hasattr(ct, "transformers_"):
        return None
    if getattr(ct, "verbose_feature_names_out", True) not in (True, False):
        return None
    parts: list[Callable[[Columns], np.ndarray]] = []
    for _name, tr, cols in ct.transformers_:
        if tr == "drop":
            continue
        if not (isinstance(cols, list) and all(isinstance(c, str) for c in cols)):
            return None
        if not cols:
            continue
        fill, tr = _imputed(tr)
        if fill is not None:
            if tr == "passthrough":
                parts.append(_filled(_passthrough(cols), fill))
            elif type(tr) is StandardScaler:
                parts.append(_filled(_scaler(tr, cols), fill, tr))
            else:
                return None
        elif tr == "passthrough":
            parts.append(_passthrough(cols))
        elif type(tr) is OneHotEncoder:
            f = _onehot(tr, cols)
            if f is None:
                return None
            parts.append(f)
        elif type(tr) is StandardScaler:
            parts.append(_scaler(tr, cols))
        else:
            return None
    if not parts:
        return None
    return lambda columns: np.hstack([p(columns) for p in parts])


def compile_model(model: Any) -> Compiled | None:
    """``predict_proba`` of a fitted ``Pipeline([(.., ColumnTransformer), (.., clf)])`` on
    columns, or None."""
    from sklearn.pipeline import Pipeline

    if not isinstance(model, Pipeline) or len(model.steps) != 2:
        return None
    pre = compile_column_transformer(model.steps[0][1])
    clf = model.steps[1][1]
    if pre is None or not hasattr(clf, "predict_proba"):
        return None
    lr = compile_binary_logistic(clf)
    if lr is not None:
        return lambda columns: lr(pre(columns))
    return lambda columns: np.asarray(clf.predict_proba(pre(columns)), dtype=float)


def compile_binary_logistic(clf: Any) -> Callable[[np.ndarray], np.ndarray] | None:
    """``clf.predict_proba`` of a fitted two-class ``LogisticRegression`` on a dense matrix as
    one product and the logistic function (what scikit-learn computes, without its per-call
    input validation, about 0.15 ms), or None."""
    from scipy.special import expit
    from sklearn.linear_model import LogisticRegression

    if type(clf) is not LogisticRegression or len(getattr(clf, "classes_", ())) != 2:
        return None
    coef = np.asarray(clf.coef_, dtype=float).ravel().copy()
    intercept = float(np.asarray(clf.intercept_, dtype=float).ravel()[0])
    if coef.ndim != 1:  # pragma: no cover - two classes have one row of coefficients
        return None

    def run(Z: np.ndarray) -> np.ndarray:
        p = expit(Z @ coef + intercept)
        return np.stack([1 - p, p], axis=1)

    return run


def compile_isolation_forest(iso: Any) -> Callable[[np.ndarray], np.ndarray] | None:
    """``iso.score_samples`` on a dense float matrix, all trees at once, or None."""
    from sklearn.ensemble import IsolationForest
    from sklearn.ensemble._iforest import _average_path_length

    need = ("estimators_", "estimators_features_", "_decision_path_lengths",
            "_average_path_length_per_tree", "_max_samples")
    if type(iso) is not IsolationForest or not all(hasattr(iso, a) for a in need):
        return None
    feature, threshold, left, right, value, roots = [], [], [], [], [], []
    offset = 0
    for tree, feats, dpl, apl in zip(iso.estimators_, iso.estimators_features_,
                                     iso._decision_path_lengths,
                                     iso._average_path_length_per_tree, strict=True):
        t = tree.tree_
        leaf = t.children_left == -1
        feature.append(np.where(leaf, 0, np.asarray(feats)[np.maximum(t.feature, 0)]))
        threshold.append(t.threshold)
        left.append(np.where(leaf, np.arange(t.node_count), t.children_left) + offset)
        right.append(np.where(leaf, np.arange(t.node_count), t.children_right) + offset)
        value.append(np.asarray(dpl, dtype=float) + np.asarray(apl, dtype=float) - 1.0)
        roots.append(offset)
        offset += t.node_count
    F, T, L, R, V = (np.concatenate(a) for a in (feature, threshold, left, right, value))
    root = np.asarray(roots, dtype=np.intp)[:, None]
    depth = int(max(e.tree_.max_depth for e in iso.estimators_))
    denominator = len(iso.estimators_) * float(_average_path_length([iso._max_samples])[0])
    if denominator == 0:
        return None

    trees = [(e.tree_, None if np.array_equal(f, np.arange(len(f))) else np.asarray(f), v)
             for e, f, v in zip(
        iso.estimators_, iso.estimators_features_, np.split(V, np.cumsum(
            [e.tree_.node_count for e in iso.estimators_])[:-1]), strict=True)]

    def score(Z: np.ndarray) -> np.ndarray:
        Z32 = np.asarray(Z, dtype=np.float32)  # the trees compare float32 inputs
        if len(Z32) > 256:  # many rows: each tree's compiled apply beats one numpy walk
            total = np.zeros(len(Z32))
            Zc = np.ascontiguousarray(Z32)
            for tree, feats, value in trees:
                sub = Zc if feats is None else np.ascontiguousarray(Zc[:, feats])
                total += value[tree.apply(sub)]
        else:
            Z64 = Z32.astype(float)
            node = np.repeat(root, len(Z64), axis=1)
            rows = np.arange(len(Z64))[None, :]
            for _ in range(depth):
                go_left = Z64[rows, F[node]] <= T[node]
                node = np.where(go_left, L[node], R[node])
            total = V[node].sum(axis=0)
        return np.asarray(-(2.0 ** (-total / denominator)))

    return score


def compile_screen(screen: Any) -> Compiled | None:
    """``screen.predict(X) == -1`` on columns for an ``OODDetector`` fitted on a DataFrame."""
    from finmlsec.defences.input_screen import OODDetector

    if type(screen) is not OODDetector or getattr(screen, "encoder_", None) is None:
        return None
    enc = compile_column_transformer(screen.encoder_)
    forest = compile_isolation_forest(screen.iso_)
    if enc is None or forest is None:
        return None
    offset = screen.offset_
    bounds = getattr(screen, "bounds_", None)
    if not bounds:
        return lambda columns: forest(enc(columns)) - offset < 0
    margin = float(screen.envelope or 0.0)
    limits = [(c, lo - width * margin, hi + width * margin) for c, (lo, hi, width) in
              bounds.items()]

    def flagged(columns: Columns) -> np.ndarray:  # the forest, then the envelope
        out = np.asarray(forest(enc(columns)) - offset < 0)
        for c, lo, hi in limits:
            v = np.asarray(columns[c], dtype=float)
            with np.errstate(invalid="ignore"):
                out = out | (v < lo) | (v > hi)
        return out

    return flagged


def verified(compile: Callable[[], Compiled | None], slow: Callable[[Any], np.ndarray],
             reference: Any, names: Sequence[str], rows: int = 300) -> Compiled | None:
    """The function ``compile()`` builds if it reproduces ``slow`` on up to ``rows`` reference
    records, else None. Compiling reads scikit-learn's fitted (partly private) attributes, so it
    runs inside this guard too: a release that renames or reshapes them makes the gateway use
    the original objects, never fail to start."""
    if reference is None or not hasattr(reference, "iloc"):
        return None
    X = reference.iloc[:rows][list(names)]
    try:
        fast = compile()
        if fast is None:
            return None
        got = np.asarray(fast({n: X[n].tolist() for n in names}))
        want = np.asarray(slow(X))
    except Exception:  # noqa: BLE001 - any failure means: do not use the compiled path
        return None
    if got.shape != want.shape:
        return None
    if got.dtype == bool or want.dtype == bool:
        return fast if bool(np.array_equal(got, want)) else None
    return fast if bool(np.allclose(got, want, rtol=0, atol=1e-9)) else None
