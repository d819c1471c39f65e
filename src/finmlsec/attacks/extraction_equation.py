"""Equation-solving extraction of logistic and softmax models (Tramer et al. 2016).

A logistic model has ``log(p_1 / p_0) = w . z + b`` in the coordinates ``z`` its preprocessing
produces; scaling and one-hot encoding are affine, so the log-ratios stay affine in the raw
record's coordinates (:class:`~finmlsec.attacks.extraction_common.Encoding`). ``d + 1`` valid raw
records, a base record and one change of one field (or one category) each, give a square linear
system per class; its solution reproduces the target's probabilities exactly.

Example:
    >>> import numpy as np, pandas as pd
    >>> from sklearn.compose import make_column_transformer
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import OneHotEncoder, StandardScaler
    >>> from finmlsec.attacks.base import AttackData
    >>> from finmlsec.schema import Feature, FeatureSchema
    >>> from finmlsec.targets.oracle import Oracle
    >>> schema = FeatureSchema(features=(
    ...     Feature(name="age", type="integer", min=18, max=75),
    ...     Feature(name="purpose", type="categorical", categories=("car", "tv", "work")),
    ... ))
    >>> X = schema.sample_uniform(200, 0); y = (X.age > 40).astype(int).to_numpy()
    >>> model = make_pipeline(make_column_transformer((StandardScaler(), ["age"]),
    ...     (OneHotEncoder(), ["purpose"])), LogisticRegression()).fit(X, y)
    >>> result = EquationSolving(n_uniform=500).run(Oracle(model), AttackData(schema=schema))
    >>> result.queries, result.metrics["fidelity_uniform"], result.metrics["max_proba_error"] < 1e-8
    (4, 1.0, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from finmlsec.attacks.base import ATTACKS, Attack, AttackData, Meter, Outcome
from finmlsec.attacks.extraction_common import (
    Encoding,
    bounds,
    check_int,
    sample_records,
    tabular_schema,
    theft_metrics,
    theft_success,
)
from finmlsec.schema import FeatureSchema, FeatureType
from finmlsec.targets.oracle import Oracle

_TINY = 1e-300
#: A copy solved from full probabilities that misses the target's by more than this on held-out
#: records shows a target that is not log-linear in the fields (a tree ensemble, a network).
NOT_LINEAR = 0.05


@dataclass(frozen=True)
class LinearStolenModel:
    """A softmax model over :class:`Encoding` coordinates: ``log(p_k / p_0) = coef[k-1] . z +
    intercept[k-1]``; predicts raw records like the target."""

    encoding: Encoding
    coef: np.ndarray  # (K - 1, d)
    intercept: np.ndarray  # (K - 1,)
    classes_: np.ndarray

    def decision(self, X: pd.DataFrame) -> np.ndarray:
        z = self.encoding.encode(X)
        return np.hstack([np.zeros((len(z), 1)), z @ self.coef.T + self.intercept])

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        s = self.decision(X)
        s -= s.max(axis=1, keepdims=True)
        e = np.exp(s)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classes_[np.argmax(self.decision(X), axis=1)]


def design_queries(schema: FeatureSchema, population: pd.DataFrame | None = None, *,
                   missing: bool = False) -> pd.DataFrame:
    """The base record (numeric fields mid-range, first category) and, for each coordinate of the
    encoding, the base with that one field or category changed: ``d + 1`` valid raw records.
    With ``missing`` (the coordinates of ``Encoding.from_schema(schema, missing=True)``), also
    the base with each nullable field left empty, one at a time: what the target does with a
    missing cell (imputes a constant, or reads it as a level of its own) is then solved for like
    any other coordinate."""
    base: dict[str, Any] = {}
    for f in schema.features:
        if f.type == FeatureType.CATEGORICAL:
            base[f.name] = (f.categories or ("",))[0]
        else:
            lo, hi = bounds(f, population)
            mid = (lo + hi) / 2
            base[f.name] = mid if f.type == FeatureType.NUMERIC else int(np.floor(mid))
    rows = [dict(base)]
    for f in schema.features:
        if f.type == FeatureType.CATEGORICAL:
            rows += [{**base, f.name: c} for c in (f.categories or ())[1:]]
            if missing and f.nullable:
                rows.append({**base, f.name: np.nan})
            continue
        lo, hi = bounds(f, population)
        if f.type == FeatureType.NUMERIC:
            rows.append({**base, f.name: base[f.name] + (hi - lo) / 4})
        else:
            step = max(1, int(round((hi - lo) / 4)))
            v = base[f.name] + step
            rows.append({**base, f.name: v if v <= hi else base[f.name] - step})
        if missing and f.nullable:
            rows.append({**base, f.name: np.nan})
    out = pd.DataFrame(rows, columns=schema.names)
    for f in schema.features:
        if f.type in (FeatureType.INTEGER, FeatureType.BINARY) and not out[f.name].isna().any():
            out[f.name] = out[f.name].astype(int)
    return out


@ATTACKS.register("extraction.equation")
class EquationSolving(Attack):
    """Steal a logistic / softmax model exactly from its probabilities with ``d + 1`` queries.

    ``extra_queries`` adds random valid records and solves in the least-squares sense (useful
    when the outputs are rounded); ``n_uniform`` is the number of uniform samples of the input
    space on which fidelity is measured (evaluator side, not charged). See the module docstring
    for an example.
    """

    name: ClassVar[str] = "extraction.equation"
    threat: ClassVar[str] = "infer_model"
    via: ClassVar[str] = "model_io"
    needs: ClassVar[frozenset[str]] = frozenset({"proba", "schema"})
    atlas: ClassVar[tuple[str, ...]] = ("AML.T0024.002", "AML.T0005.001")
    owasp: ClassVar[tuple[str, ...]] = ("ML05",)
    summary: ClassVar[str] = (
        "equation solving (Tramer 2016): exact copy of a logistic/softmax model with d+1 "
        "probability queries"
    )
    input_kinds: ClassVar[tuple[str, ...]] = ("tabular",)
    cost_rank: ClassVar[int] = 1
    strength_rank: ClassVar[int] = 1

    extra_queries: int = 0
    n_uniform: int = 2000
    seed: int = 0

    def fits(self, defences: tuple[Any, ...] = ()) -> float:
        """The copy trained without queries on the attacker's public records (a baseline)."""
        return 1.0

    def _validate(self) -> None:
        check_int("EquationSolving", "extra_queries", self.extra_queries, 0)
        check_int("EquationSolving", "n_uniform", self.n_uniform, 0)
        check_int("EquationSolving", "seed", self.seed, 0)

    def _attack(self, oracle: Oracle, data: AttackData, meter: Meter) -> Outcome:
        schema = tabular_schema(data.schema, f"attack {self.name!r}", data.population)
        pop = data.population.X if data.population is not None else None
        enc = Encoding.from_schema(schema, missing=True)
        notes: list[str] = []
        Q = design_queries(schema, pop, missing=True)
        if self.extra_queries:
            rng = np.random.default_rng(self.seed)
            Q = pd.concat([Q, sample_records(schema, self.extra_queries, rng, pop, "uniform")],
                          ignore_index=True)
        remaining = oracle.remaining
        if remaining is not None and remaining < len(Q):
            notes.append(
                f"budget {remaining} < {len(Q)} queries needed: solved an underdetermined "
                "system (minimum-norm), the copy is approximate"
            )
            Q = Q.iloc[:remaining]
        classes = np.asarray(oracle.classes_)
        k = len(classes)
        coef, intercept = np.zeros((k - 1, enc.dim)), np.zeros(k - 1)
        if len(Q) > 0:
            P = oracle.predict_proba(Q)
            # rounded outputs: 0 stands for anything below half a unit of the last decimal
            floor = 0.5 * 10.0 ** -oracle.decimals if oracle.access == "rounded" else _TINY
            sat = ((P <= 0) | (P >= 1)).any(axis=1)
            Z = np.hstack([np.ones((len(Q), 1)), enc.encode(Q)])
            if sat.any():
                keep = ~sat if (~sat).sum() >= enc.dim + 1 else np.ones(len(Q), dtype=bool)
                notes.append(f"{int(sat.sum())} answer(s) saturated at 0 or 1: "
                             + ("left out of the system" if not keep.all() else
                                "log-ratios clipped"))
                P, Z = P[keep], Z[keep]
            logp = np.log(np.clip(P, floor, None))
            L = logp[:, 1:] - logp[:, :1]
            scale = np.maximum(np.abs(Z).max(axis=0), 1e-12)
            theta, *_ = np.linalg.lstsq(Z / scale, L, rcond=None)
            theta = theta / scale[:, None]
            intercept, coef = theta[0], theta[1:].T
        stolen = LinearStolenModel(enc, coef, intercept, classes)
        queries = meter.queries
        m = theft_metrics(stolen, oracle.target, schema, data.test, public=data.population,
                          factory=data.model_factory, n_uniform=self.n_uniform,
                          seed=self.seed, population=pop)
        probe = data.test.X if data.test is not None else sample_records(
            schema, 200, np.random.default_rng(self.seed + 1), pop, "uniform")
        m["max_proba_error"] = float(
            np.abs(oracle.target.predict_proba(probe) - stolen.predict_proba(probe)).max())
        if (oracle.access == "proba" and len(Q) >= enc.dim + 1
                and m["max_proba_error"] > NOT_LINEAR):
            notes.append(
                f"the target is not a logistic/softmax model of these fields (the solved copy's "
                f"probabilities differ from the target's by up to {m['max_proba_error']:.2f} on "
                "held-out records): the copy is a linear approximation and its figure a lower "
                "bound; extraction.learning measures theft of such a model")
        m["dim"] = float(enc.dim)
        m["queries"] = float(queries)
        success, why = theft_success(m)
        return Outcome(
            success=float(success), metrics=m,
            curves={"fidelity_vs_queries": {"queries": [float(queries)],
                                            "fidelity": [float(m.get("fidelity_lift", success))]}},
            notes=tuple(notes + ([why] if why else [])),
        )
