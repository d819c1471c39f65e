"""What extraction attacks share: the attacker's view of the input space and how to score a theft.

:class:`Encoding` maps raw tabular records (a DataFrame that satisfies a
:class:`~finmlsec.schema.FeatureSchema`) to the affine coordinates a linear model sees
after scaling and one-hot encoding: one column per numeric field, one indicator per category
except the first of each categorical field. :func:`sample_records` draws valid query records from
what the attacker knows (schema ranges, and the marginals of public records when it has some).
:func:`theft_metrics` scores a stolen model against the target, on the evaluator's side.

Example:
    >>> import pandas as pd
    >>> from finmlsec.schema import Feature, FeatureSchema
    >>> schema = FeatureSchema(features=(
    ...     Feature(name="age", type="integer", min=18, max=75),
    ...     Feature(name="purpose", type="categorical", categories=("car", "tv", "work")),
    ... ))
    >>> enc = Encoding.from_schema(schema)
    >>> enc.dim, enc.columns
    (3, ['age', 'purpose=tv', 'purpose=work'])
    >>> enc.encode(pd.DataFrame({"age": [30], "purpose": ["work"]})).tolist()
    [[30.0, 0.0, 1.0]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from finmlsec import metrics
from finmlsec.errors import CapabilityError, ConfigError, DataError
from finmlsec.schema import Feature, FeatureSchema, FeatureType

SOURCES = ("mixed", "uniform", "marginal", "public", "blend")
_TABULAR = (FeatureType.NUMERIC, FeatureType.INTEGER, FeatureType.BINARY, FeatureType.CATEGORICAL)


def tabular_schema(schema: FeatureSchema | None, who: str,
                   population: Any = None) -> FeatureSchema:
    """The schema, checked to describe tabular records only. A free-text field among them is
    not searched: it becomes a frozen category holding one value, the most common one among the
    attacker's public records (``population``), which the attacker's own queries carry."""
    if schema is None:
        raise CapabilityError(f"{who} needs the feature schema of the target's inputs")
    bad = [f.name for f in schema.features if f.type not in (*_TABULAR, FeatureType.TEXT)]
    if not bad and all(f.type == FeatureType.TEXT for f in schema.features):
        bad = [f.name for f in schema.features]  # text alone is not a tabular record
    if bad:
        raise ConfigError(
            f"{who} works on tabular records only; fields {bad} are text or images"
        )
    if not any(f.type == FeatureType.TEXT for f in schema.features):
        return schema
    pop = getattr(population, "X", population)
    feats = []
    for f in schema.features:
        if f.type == FeatureType.TEXT:
            seen = (pop[f.name].dropna().astype(str) if isinstance(pop, pd.DataFrame)
                    and f.name in pop else pd.Series([], dtype=object))
            value = str(seen.value_counts().index[0]) if len(seen) else ""
            f = f.model_copy(update={"type": FeatureType.CATEGORICAL, "categories": (value,),
                                     "immutable": True})
        feats.append(f)
    return schema.model_copy(update={"features": tuple(feats)})


def bounds(f: Feature, population: pd.DataFrame | None = None) -> tuple[float, float]:
    """The range of a numeric field: the schema's, else the public records', else an error."""
    lo, hi = f.min, f.max
    if f.type == FeatureType.BINARY:
        lo = 0.0 if lo is None else lo
        hi = 1.0 if hi is None else hi
    if (lo is None or hi is None) and population is not None and f.name in population:
        col = pd.to_numeric(population[f.name], errors="coerce")
        lo = float(col.min()) if lo is None else lo
        hi = float(col.max()) if hi is None else hi
    if lo is None or hi is None:
        raise DataError(
            f"feature {f.name!r} has no bounded range; give min and max in the schema or "
            "provide public records"
        )
    return float(lo), float(hi)


#: How :class:`Encoding` names the indicator of a missing cell (``NAME=<missing>``).
MISSING = "<missing>"


@dataclass(frozen=True)
class Encoding:
    """Affine coordinates of raw records: numeric values as they are, categories as indicators
    (first category dropped, so that the coordinates are identifiable with an intercept).

    With ``missing``, each nullable field also has an indicator of a missing cell
    (``NAME=<missing>``), and a missing number counts as 0 in its own coordinate: a pipeline that
    imputes a constant (median, most frequent category) or encodes a missing category as a level
    of its own stays affine in these coordinates. Without it a missing cell encodes as NaN (a
    number) or as no category at all."""

    schema: FeatureSchema
    columns: list[str]
    missing: tuple[str, ...] = ()

    @classmethod
    def from_schema(cls, schema: FeatureSchema, *, missing: bool = False) -> Encoding:
        cols: list[str] = []
        nullable: list[str] = []
        for f in tabular_schema(schema, "encoding").features:
            if f.type == FeatureType.TEXT:
                continue
            if f.type == FeatureType.CATEGORICAL:
                cols += [f"{f.name}={c}" for c in (f.categories or ())[1:]]
            else:
                cols.append(f.name)
            if missing and f.nullable:
                cols.append(f"{f.name}={MISSING}")
                nullable.append(f.name)
        return cls(schema=schema, columns=cols, missing=tuple(nullable))

    @property
    def dim(self) -> int:
        return len(self.columns)

    def encode(self, X: pd.DataFrame) -> np.ndarray:
        parts = []
        for f in self.schema.features:
            if f.type == FeatureType.TEXT:
                continue
            isna = X[f.name].isna().to_numpy()
            if f.type == FeatureType.CATEGORICAL:
                vals = X[f.name].astype(str).to_numpy()
                cats = list(f.categories or ())
                parts.append(np.stack([(vals == c) & ~isna for c in cats[1:]], axis=1)
                             .astype(float) if len(cats) > 1 else np.zeros((len(X), 0)))
            else:
                num = pd.to_numeric(X[f.name]).to_numpy(dtype=float)
                parts.append((np.where(isna, 0.0, num) if f.name in self.missing else num)[:, None])
            if f.name in self.missing:
                parts.append(isna.astype(float)[:, None])
        return np.hstack(parts) if parts else np.zeros((len(X), 0))


def _numeric_column(f: Feature, lo: float, hi: float, n: int, rng: np.random.Generator) -> Any:
    if f.type == FeatureType.NUMERIC:
        return rng.uniform(lo, hi, size=n)
    return rng.integers(int(np.ceil(lo)), int(np.floor(hi)) + 1, size=n)


def sample_records(
    schema: FeatureSchema,
    n: int,
    rng: np.random.Generator,
    population: pd.DataFrame | None = None,
    mode: str = "mixed",
) -> pd.DataFrame:
    """``n`` valid records the attacker can build.

    ``uniform``: each field uniform over its range or categories; ``marginal``: each field drawn
    independently from the public records' values; ``mixed``: a third uniform, a third marginal,
    a third public records with a few fields resampled (falls back to uniform without records).
    """
    if mode not in SOURCES:
        raise ConfigError(
            f"The 'mode' parameter of sample_records must be one of {list(SOURCES)}. "
            f"Got {mode!r} instead."
        )
    if population is None or len(population) == 0 or mode == "uniform":
        return _uniform(schema, n, rng, population)
    if mode == "marginal":
        return _marginal(schema, n, rng, population)
    if mode == "public":
        return _public(schema, n, rng, population)
    if mode == "blend":
        return _blend(schema, n, rng, population)
    n_u, n_m = n // 3, n // 3
    n_p = n - n_u - n_m
    parts = [_uniform(schema, n_u, rng, population), _marginal(schema, n_m, rng, population),
             _public(schema, n_p, rng, population)]
    out = pd.concat(parts, ignore_index=True)
    return out.iloc[rng.permutation(len(out))].reset_index(drop=True)


def _public(schema: FeatureSchema, n: int, rng: np.random.Generator,
            population: pd.DataFrame, swap_share: float = 0.25) -> pd.DataFrame:
    rows = population.iloc[rng.integers(0, len(population), size=n)].reset_index(drop=True)
    resampled = _marginal(schema, n, rng, population)
    swap = rng.random((n, len(schema.features))) < swap_share
    for j, f in enumerate(schema.features):
        rows.loc[swap[:, j], f.name] = resampled.loc[swap[:, j], f.name]
    return rows[schema.names]


def _blend(schema: FeatureSchema, n: int, rng: np.random.Generator,
           population: pd.DataFrame) -> pd.DataFrame:
    """Records between two public records: numbers interpolated, each other field taken from
    one of the two (stays near the data, unlike independent marginals)."""
    a = population.iloc[rng.integers(0, len(population), size=n)].reset_index(drop=True)
    b = population.iloc[rng.integers(0, len(population), size=n)].reset_index(drop=True)
    t = rng.random(n)
    out = a.copy()
    for f in schema.features:
        if f.type in (FeatureType.CATEGORICAL, FeatureType.TEXT):
            pick = rng.random(n) < 0.5
            out.loc[pick, f.name] = b.loc[pick, f.name]
        else:
            va = pd.to_numeric(a[f.name]).to_numpy(dtype=float)
            vb = pd.to_numeric(b[f.name]).to_numpy(dtype=float)
            out[f.name] = t * va + (1 - t) * vb
    return schema.project(out)[schema.names]


def _uniform(schema: FeatureSchema, n: int, rng: np.random.Generator,
             population: pd.DataFrame | None) -> pd.DataFrame:
    cols: dict[str, Any] = {}
    for f in schema.features:
        if f.type == FeatureType.CATEGORICAL:
            cats = list(f.categories or ())
            cols[f.name] = [cats[i] for i in rng.integers(0, len(cats), size=n)]
        elif f.type == FeatureType.TEXT:
            seen = population[f.name].dropna().to_numpy() if population is not None else []
            cols[f.name] = (np.asarray(seen, dtype=object)[rng.integers(0, len(seen), size=n)]
                            if len(seen) else np.full(n, np.nan, dtype=object))
        else:
            lo, hi = bounds(f, population)
            cols[f.name] = _numeric_column(f, lo, hi, n, rng)
    return pd.DataFrame(cols, columns=schema.names)


def _marginal(schema: FeatureSchema, n: int, rng: np.random.Generator,
              population: pd.DataFrame) -> pd.DataFrame:
    cols = {}
    for f in schema.features:
        col = population[f.name]
        # the attacker chooses its queries: numbers and categories it fills in, free text it
        # copies as found (missing included)
        values = (col if f.type == FeatureType.TEXT else col.dropna()).to_numpy()
        if len(values) == 0:
            values = col.to_numpy()
        cols[f.name] = values[rng.integers(0, len(values), size=n)]
    return pd.DataFrame(cols, columns=schema.names)


def truth_labels(classes: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Integer dataset labels in the target's label space (``classes_``)."""
    classes = np.asarray(classes)
    y = np.asarray(y)
    if np.issubdtype(classes.dtype, np.integer) or np.issubdtype(classes.dtype, np.bool_):
        return y
    return classes[y.astype(int)]


#: Level of the test of a copy's lift over the no-model copy (:func:`lift_test`): a lift whose
#: p-value is at or above it is within noise and the attack's success counts it as 0.
LIFT_ALPHA = 0.05
#: How the note of a lift within noise begins (the scan carries it to the threat's notes).
LIFT_NOISE = "the copy's agreement beyond the no-model copy is within noise"
#: The metric holding a success figure's point estimate (the lift) when the headline success was
#: counted as 0 for being within noise of the no-model baseline: the rating reads the headline,
#: the comparison of a countermeasure with the system as deployed reads this (see
#: :func:`finmlsec.scan.decide.figure`), so that a defended figure measured on too few trials to
#: be significant is not taken for a fall.
ESTIMATE = "success_estimate"


def mcnemar_exact(b: int, c: int) -> float:
    """One-sided p-value of McNemar's exact test: ``P(X >= b)`` for ``X ~ Binomial(b + c, 1/2)``,
    where ``b`` records are answered like the target by the copy and not by the baseline copy,
    and ``c`` the reverse (records both get right or both get wrong say nothing of the
    difference). 1.0 when the copy wins no such record.

    Example:
        >>> mcnemar_exact(2, 0), mcnemar_exact(5, 0), round(mcnemar_exact(10, 2), 4)
        (0.25, 0.03125, 0.0193)
        >>> mcnemar_exact(0, 0), mcnemar_exact(0, 3)
        (1.0, 1.0)
    """
    if b <= 0:
        return 1.0
    from scipy.stats import binom

    return float(min(1.0, binom.sf(b - 1, b + c, 0.5)))


def lift_test(t_pred: Any, s_pred: Any, base_pred: Any) -> dict[str, float]:
    """McNemar's exact test of the copy (``s_pred``) against the baseline copy (``base_pred``),
    both scored on agreeing with the target's answers (``t_pred``) record by record:
    ``fidelity_lift_b`` (records only the copy gets right), ``fidelity_lift_c`` (only the
    baseline) and the one-sided ``fidelity_lift_p`` of :func:`mcnemar_exact`."""
    t = np.asarray(t_pred).ravel()
    copy_ok = t == np.asarray(s_pred).ravel()
    base_ok = t.astype(str) == np.asarray(base_pred).ravel().astype(str)
    b = int(np.sum(copy_ok & ~base_ok))
    c = int(np.sum(~copy_ok & base_ok))
    return {"fidelity_lift_b": float(b), "fidelity_lift_c": float(c),
            "fidelity_lift_p": mcnemar_exact(b, c)}


def theft_success(m: dict[str, float]) -> tuple[float, str | None]:
    """An extraction attack's headline success from its :func:`theft_metrics` ``m``, and the
    note that says why when it is not the lift: the fidelity lift when the copy's agreement
    beyond the no-model copy is significant (``fidelity_lift_p`` below :data:`LIFT_ALPHA`),
    else 0 (a lift resting on a handful of records is noise, not theft), the lift then kept in
    ``m[ESTIMATE]``; the fidelity on uniform samples when there is no test data.

    Example:
        >>> theft_success({"fidelity_lift": 1.0, "fidelity_lift_p": 0.25, "fidelity_lift_b": 2.0,
        ...                "fidelity_lift_c": 0.0, "fidelity_test": 1.0,
        ...                "fidelity_baseline": 0.9933})[1][:61]
        "the copy's agreement beyond the no-model copy is within noise"
        >>> theft_success({"fidelity_lift": 0.8, "fidelity_lift_p": 0.001})
        (0.8, None)
    """
    if "fidelity_lift" not in m:
        return float(m.get("fidelity_uniform", 0.0)), None
    lift, p = float(m["fidelity_lift"]), m.get("fidelity_lift_p")
    score, score_p = m.get("score_lift"), m.get("score_lift_p")
    if score is not None and score_p is not None and score_p < LIFT_ALPHA and (
            score > (lift if p is not None and p < LIFT_ALPHA else 0.0)):
        # the copy reproduces the model's scores beyond a constant score: a bank that ranks
        # applicants by score has lost its scoring, whatever the decisions at one threshold
        # (on 95/5 data they are nearly constant, and their agreement says nothing)
        return float(score), (
            f"success is the copy's score fidelity lift {float(score):.3f}: its scores are "
            f"closer to the model's than the no-query baseline's (a constant score or a copy of "
            f"the public records) on {int(m['score_lift_b'])} of "
            f"{int(m['score_lift_b'] + m['score_lift_c'])} test records (p={float(score_p):.3g}, "
            f"sign test, one-sided; mean total-variation distance {m['score_distance']:.4f} "
            f"against {m['score_distance_baseline']:.4f}); the decisions' agreement lift is "
            f"{lift:.3f} (fidelity {m['fidelity_test']:.4f} against the no-model copy's "
            f"{m['fidelity_baseline']:.4f})")
    if lift <= 0 or p is None or p < LIFT_ALPHA:
        return lift, None
    m[ESTIMATE] = lift
    return 0.0, (
        f"{LIFT_NOISE} (b={int(m['fidelity_lift_b'])}, c={int(m['fidelity_lift_c'])} records, "
        f"p={p:.3g}; McNemar's exact test, one-sided, at {LIFT_ALPHA:g}): success counted as 0, "
        f"not the lift {lift:.3f} (fidelity {m['fidelity_test']:.4f} against the baseline "
        f"{m['fidelity_baseline']:.4f})")


def theft_metrics(
    stolen: Any, target: Any, schema: FeatureSchema, test: Any, *, n_uniform: int, seed: int,
    population: pd.DataFrame | None = None, public: Any = None, factory: Any = None,
    copies_scores: bool = True,
) -> dict[str, float]:
    """Fidelity of ``stolen`` to ``target`` on test data and on uniform samples of the input
    space, and the stolen model's accuracy; on test data also the lift over the better no-model
    copy and its significance (:func:`lift_test`; the most conservative test when both copies
    tie). Evaluator side: target calls here are not charged to the attacker's budget (they
    measure the result, they are not part of the attack). A copy of the scores
    (``copies_scores``) of a model that decides at the bank's cut-off
    (``model.decision_threshold``) decides at it too: the cut-off is where the model's answers
    change from one class to the other, which an attacker who sees both reads off."""
    from finmlsec.targets.cutoff import decided_like

    if copies_scores:
        stolen = decided_like(stolen, target)
    out: dict[str, float] = {}
    if test is not None and len(test) > 0:
        t_pred = np.asarray(target.predict(test.X))
        s_pred = np.asarray(stolen.predict(test.X))
        out["fidelity_test"] = metrics.fidelity(t_pred, s_pred)
        if test.y is not None:
            truth = truth_labels(target.classes_, test.y)
            out["stolen_accuracy"] = float(np.mean(s_pred == truth))
            out["target_accuracy"] = float(np.mean(t_pred == truth))
        public_scores: dict[str, Any] = {}
        copies = baseline_copies(target, t_pred, test, public, factory, scores=public_scores)
        t_str = t_pred.astype(str)
        fid = {k: metrics.fidelity(t_str, v) for k, v in copies.items()}
        out.update(fid)
        base = max(fid.values())
        out["fidelity_baseline"] = base
        out["fidelity_lift"] = (float(max(0.0, (out["fidelity_test"] - base) / (1.0 - base)))
                                if base < 1.0 else 0.0)
        tests = [lift_test(t_pred, s_pred, copies[k]) for k, v in fid.items() if v == base]
        out.update(max(tests, key=lambda r: r["fidelity_lift_p"]))
        out.update(score_fidelity(stolen, target, test.X, public_scores.get("baseline_public")))
    if n_uniform > 0:
        U = _uniform(schema, n_uniform, np.random.default_rng(seed + 7919), population)
        out["fidelity_uniform"] = metrics.fidelity(target.predict(U), stolen.predict(U))
    return out


def score_fidelity(stolen: Any, target: Any, X: Any,
                   public: tuple[np.ndarray, list[str]] | None = None) -> dict[str, float]:
    """How close the copy's scores are to the model's, against what an attacker scores without
    a query: a constant score (the model's median score over ``X``, the constant closest to it,
    generously) or, when given, the scores of the copy trained on the attacker's public records
    (``public``: its probabilities on ``X`` and its classes), whichever is closer on average. A
    model whose scores are its decisions ties with the constant wherever it gives the usual
    answer, so, as for decisions, only the records that depart count: the mean total-variation
    distance of each (``score_distance``, ``score_distance_baseline``), the share of it the copy
    removes (``score_lift``) and a one-sided sign test of the records where the copy is closer
    (``score_lift_b``) against those where the baseline is (``score_lift_c``;
    ``score_lift_p``). Empty when either model gives no probabilities."""
    if not (callable(getattr(stolen, "predict_proba", None))
            and callable(getattr(target, "predict_proba", None))):
        return {}
    try:
        pt = np.asarray(target.predict_proba(X), dtype=float)
        ps = np.asarray(stolen.predict_proba(X), dtype=float)
    except Exception:  # noqa: BLE001 - a copy that cannot score is measured on its decisions
        return {}
    t_cls = [str(c) for c in np.asarray(target.classes_).tolist()]
    s_cls = [str(c) for c in np.asarray(getattr(stolen, "classes_", t_cls)).tolist()]
    aligned = _align(pt, ps, t_cls, s_cls)
    if aligned is None:
        return {}
    d_copy = 0.5 * np.abs(pt - aligned).sum(axis=1)
    d_base = 0.5 * np.abs(pt - np.median(pt, axis=0)).sum(axis=1)
    if public is not None:
        pub = _align(pt, np.asarray(public[0], dtype=float), t_cls, public[1])
        if pub is not None:
            d_pub = 0.5 * np.abs(pt - pub).sum(axis=1)
            d_base = d_pub if d_pub.mean() < d_base.mean() else d_base
    base = float(d_base.mean())
    b = int(np.sum(d_copy < d_base - 1e-12))
    c = int(np.sum(d_copy > d_base + 1e-12))
    return {"score_distance": float(d_copy.mean()), "score_distance_baseline": base,
            "score_lift": float(max(0.0, (base - d_copy.mean()) / base)) if base > 0 else 0.0,
            "score_lift_b": float(b), "score_lift_c": float(c),
            "score_lift_p": mcnemar_exact(b, c)}


def _align(pt: np.ndarray, ps: np.ndarray, t_cls: list[str], s_cls: list[str]
           ) -> np.ndarray | None:
    """``ps`` (a copy's probabilities over ``s_cls``) in the columns of the model's ``pt`` over
    ``t_cls``; None when the shapes or classes do not fit."""
    if pt.ndim != 2 or ps.ndim != 2 or len(pt) != len(ps) or not set(s_cls) <= set(t_cls) \
            or ps.shape[1] != len(s_cls):
        return None
    aligned = np.zeros_like(pt)
    for j, name in enumerate(s_cls):
        aligned[:, t_cls.index(name)] = ps[:, j]
    return aligned


def baseline_copies(target: Any, t_pred: np.ndarray, test: Any, public: Any = None,
                    factory: Any = None, scores: dict[str, Any] | None = None,
                    ) -> dict[str, np.ndarray]:
    """What an attacker gets without querying the model, as its answers (strings) on the test
    records: the best constant copy (always the most frequent decision: on imbalanced data it
    agrees most of the time) and, given the attacker's labelled public records and the training
    algorithm, a copy trained on them (its probabilities and classes go into ``scores`` under
    ``baseline_public`` when it has them, for :func:`score_fidelity`)."""
    values, counts = np.unique(t_pred.astype(str), return_counts=True)
    out = {"baseline_constant": np.full(len(t_pred), values[np.argmax(counts)])}
    if factory is not None and public is not None and getattr(public, "y", None) is not None \
            and len(public) > 1:
        try:
            y = truth_labels(target.classes_, np.asarray(public.y))
            copy = factory().fit(public.X, y)
            out["baseline_public"] = np.asarray(copy.predict(test.X)).astype(str)
            if scores is not None and callable(getattr(copy, "predict_proba", None)):
                scores["baseline_public"] = (
                    np.asarray(copy.predict_proba(test.X), dtype=float),
                    [str(c) for c in np.asarray(copy.classes_).tolist()])
        except (ValueError, TypeError):  # too few records or classes to train on: no such copy
            pass
    return out


def check_int(owner: str, name: str, value: Any, lo: int, hi: int | None = None) -> None:
    """Raise ConfigError (scikit-learn wording) unless ``value`` is an int in [lo, hi]."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= lo
    ok = ok and (hi is None or value <= hi)
    if not ok:
        rng = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ConfigError(
            f"The {name!r} parameter of {owner} must be an int {rng}. "
            f"Got {value!r} instead."
        )


def check_choice(owner: str, name: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(
            f"The {name!r} parameter of {owner} must be one of {list(choices)}. "
            f"Got {value!r} instead."
        )
