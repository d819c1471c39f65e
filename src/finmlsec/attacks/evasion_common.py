"""What every evasion attack shares: the output of ``generate`` and the helpers around it.

Every evasion attack exposes ``generate(oracle, X, y=None, schema=None) -> EvasionOutput`` (so
adversarial training can reuse it) beside the usual ``run(oracle, data) -> AttackResult``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from finmlsec.attacks.base import Outcome
from finmlsec.errors import ConfigError
from finmlsec.schema import FeatureSchema, FeatureType
from finmlsec.targets.oracle import Oracle


@dataclass(frozen=True)
class EvasionOutput:
    """What ``generate`` returns: the adversarial inputs, per-row success (the target's decision
    reached the attacker's goal) and validity (the input satisfies the schema and its
    immutable/monotone constraints), and the number of oracle queries spent."""

    X_adv: Any
    success: np.ndarray
    valid: np.ndarray
    queries: int


def resolve_class(
    target_class: str | int | None, classes: np.ndarray, schema: FeatureSchema | None = None
) -> Any:
    """The label value (as the target's ``classes_`` holds it) named by ``target_class``: a class
    label, a class name from ``schema.classes`` (when the model predicts indices), or None."""
    if target_class is None:
        return None
    values = list(np.asarray(classes).tolist())
    if target_class in values:
        return target_class
    if isinstance(target_class, str):
        names = list(schema.classes) if schema is not None and schema.classes else []
        if target_class in names and names.index(target_class) in values:
            return names.index(target_class)
        if target_class in [str(v) for v in values]:
            return values[[str(v) for v in values].index(target_class)]
    raise ConfigError(
        f"The 'target_class' parameter must name one of the target's classes {values}"
        + (f" or {list(schema.classes)}" if schema is not None and schema.classes else "")
        + f". Got {target_class!r} instead."
    )


def check_positive(owner: str, name: str, value: Any, *, integer: bool = False,
                   lo: float = 0.0, hi: float = float("inf"), closed_lo: bool = False) -> None:
    """Raise ConfigError in scikit-learn's wording unless ``lo < value <= hi`` (or ``lo <=``)."""
    kind = "an int" if integer else "a float"
    ok_type = isinstance(value, int) if integer else isinstance(value, int | float)
    ok = ok_type and not isinstance(value, bool) and (
        (lo <= value if closed_lo else lo < value) and value <= hi
    )
    if not ok:
        left = "[" if closed_lo else "("
        right = "]" if hi != float("inf") else ")"
        upper = f"{hi:g}" if hi != float("inf") else "inf"
        raise ConfigError(
            f"The {name!r} parameter of {owner} must be {kind} in {left}{lo:g}, {upper}{right}. "
            f"Got {value!r} instead."
        )


def constraint_ok(schema: FeatureSchema, X0: pd.DataFrame, X1: pd.DataFrame) -> np.ndarray:
    """Rows of ``X1`` that are valid and reachable from ``X0``: schema-valid (derived fields
    agreeing with their sources), immutable and non-actionable fields unchanged (a missing value
    stays missing), monotone fields moved only in their direction. Checked on the records alone,
    apart from the search that produced them."""
    ok = schema.is_valid(X1)
    for f in schema.features:
        if f.derived is not None:  # follows its sources; is_valid checked the agreement
            continue
        a = X0[f.name].to_numpy()
        b = X1[f.name].to_numpy()
        if f.type == FeatureType.CATEGORICAL:
            same = a.astype(str) == b.astype(str)
        elif f.type in (FeatureType.TEXT, FeatureType.IMAGE):
            na, nb = pd.isna(a), pd.isna(b)
            same = (na & nb) | ((~na & ~nb) & (a.astype(str) == b.astype(str)))
        else:
            same = np.isclose(pd.to_numeric(a, errors="coerce").astype(float),
                              pd.to_numeric(b, errors="coerce").astype(float), equal_nan=True)
        if not f.mutable:
            ok &= same
            continue
        if f.monotone is not None:
            if f.type == FeatureType.CATEGORICAL:
                order = {c: i for i, c in enumerate(f.categories or ())}
                da = np.array([order.get(str(v), -1) for v in a], dtype=float)
                db = np.array([order.get(str(v), -1) for v in b], dtype=float)
            else:
                da = pd.to_numeric(a, errors="coerce").astype(float)
                db = pd.to_numeric(b, errors="coerce").astype(float)
            step = db - da
            ok &= (step >= 0) if f.monotone == "increasing" else (step <= 0)
    return np.asarray(ok, dtype=bool)


def changes_and_cost(
    schema: FeatureSchema, X0: pd.DataFrame, X1: pd.DataFrame, scale: dict[str, float]
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: number of fields changed and the weighted cost of the change."""
    n = len(X0)
    changed = np.zeros(n, dtype=int)
    cost = np.zeros(n)
    for f in schema.features:
        if f.derived is not None:  # follows its sources: not a change of its own
            continue
        if f.type in (FeatureType.CATEGORICAL, FeatureType.TEXT, FeatureType.IMAGE):
            diff = X0[f.name].astype(str).to_numpy() != X1[f.name].astype(str).to_numpy()
            cost += f.cost * diff
        else:
            a = pd.to_numeric(X0[f.name], errors="coerce").to_numpy(dtype=float)
            b = pd.to_numeric(X1[f.name], errors="coerce").to_numpy(dtype=float)
            diff = ~np.isclose(a, b, equal_nan=True)
            filled = np.isnan(a) != np.isnan(b)
            step = np.nan_to_num(np.abs(b - a) / scale.get(f.name, 1.0), nan=0.0)
            cost += f.cost * (step + filled)
        changed += diff
    return changed, cost


def feature_scales(schema: FeatureSchema, *frames: pd.DataFrame | None) -> dict[str, float]:
    """Scale (standard deviation) of each numeric field, from the first frame that has rows;
    a quarter of the range, or 1, where no data is available."""
    out: dict[str, float] = {}
    data = next((f for f in frames if f is not None and len(f) > 1), None)
    for f in schema.features:
        if not f.is_numeric:
            continue
        s = 0.0
        if data is not None:
            s = float(pd.to_numeric(data[f.name], errors="coerce").std())
        if not np.isfinite(s) or s <= 0:
            s = (f.max - f.min) / 4 if f.min is not None and f.max is not None else 1.0
        out[f.name] = s if s > 0 else 1.0
    return out


def evasion_result(
    *, X0: pd.DataFrame, out: EvasionOutput, schema: FeatureSchema,
    scale: dict[str, float], n_already: int, seconds: float, queries: int,
    notes: tuple[str, ...] = (),
) -> Outcome:
    """The outcome of a tabular evasion run: success among valid inputs, validity, features
    changed and cost (over successful rows), queries and time per victim."""
    n = len(X0)
    changed, cost = changes_and_cost(schema, X0, out.X_adv, scale)
    won = out.success & out.valid
    metrics = {
        "n_victims": float(n),
        "n_already_at_goal": float(n_already),
        "success_rate": float(won.mean()) if n else 0.0,
        "validity_rate": float(out.valid.mean()) if n else 1.0,
        "raw_success_rate": float(out.success.mean()) if n else 0.0,
        "median_features_changed": float(np.median(changed[won])) if won.any() else float("nan"),
        "mean_features_changed": float(changed[won].mean()) if won.any() else float("nan"),
        "median_cost": float(np.median(cost[won])) if won.any() else float("nan"),
        "mean_cost": float(cost[won].mean()) if won.any() else float("nan"),
        "queries_per_victim": queries / n if n else 0.0,
        "seconds_per_victim": seconds / n if n else 0.0,
    }
    return Outcome(
        success=metrics["success_rate"], metrics=metrics,
        curves={"features_changed": {"count": [float(v) for v in np.sort(changed[won])]}},
        notes=notes,
    )


def goal_of(target_class: str | int | None, oracle: Any, schema: FeatureSchema | None
            ) -> tuple[Any, tuple[str, ...]]:
    """The decision an evading applicant wants and the note saying so: ``target_class`` if
    given, else the schema's ``favourable_class``; with neither, any change of decision counts
    (and the note says the figure mixes both directions)."""
    name = target_class if target_class is not None else (
        schema.favourable_class if schema is not None else None)
    goal = resolve_class(name, oracle.classes_, schema)
    if goal is None:
        return None, ("no favourable outcome declared (favourable_class in the schema): a "
                      "success is any change of decision, in either direction",)
    values = np.asarray(oracle.classes_).tolist()
    # a model retrained by a countermeasure predicts the schema's class indices: name them
    names = list(schema.classes) if schema is not None and schema.classes else []
    by_index = isinstance(name, str) and name not in [str(v) for v in values] and bool(names)
    others = [str(names[c]) if by_index and isinstance(c, int) and 0 <= c < len(names)
              else str(c) for c in values if c != goal]
    return goal, (f"a success moves a record from {' / '.join(others)} to the favourable "
                  f"outcome {name!s} (records already there are not counted)",)


def victims_against(
    oracle: Oracle, X: pd.DataFrame, goal: Any, y: np.ndarray | None
) -> tuple[pd.DataFrame, np.ndarray, int]:
    """Keep the victims whose current decision is against the attacker (one query each)."""
    pred = oracle.predict(X)
    if goal is not None:
        keep = pred != goal
    else:
        keep = np.ones(len(X), dtype=bool) if y is None else pred == np.asarray(y)
    idx = np.flatnonzero(keep)
    ref = pred[idx]
    return X.iloc[idx].reset_index(drop=True), ref, int((~keep).sum())


