"""Path-finding extraction of decision trees (after Tramer et al. 2016).

A tree whose answers identify the leaf (a distinct probability vector per leaf) splits the input
space into boxes: each leaf is the set of records whose every field lies in one interval (numbers)
or one set of categories. From one record in an unknown leaf, the attack finds the leaf's box,
field by field: it moves fields to their other values in groups (a record with several fields
changed stays in the leaf only if every change does), splits the failing groups, and binary
searches the interval ends of numbers, trying first the thresholds already found elsewhere in the
tree. It keeps the part of the input space that no known box covers and queries inside it until
nothing is left: the copy then answers like the target everywhere. Leaves with identical outputs
merge (their union may not be a box), which is the attack's known limit.

Example:
    >>> import numpy as np, pandas as pd
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import OneHotEncoder
    >>> from sklearn.compose import make_column_transformer
    >>> from finmlsec.attacks.base import AttackData
    >>> from finmlsec.schema import Feature, FeatureSchema
    >>> from finmlsec.targets.oracle import Oracle
    >>> schema = FeatureSchema(features=(
    ...     Feature(name="age", type="integer", min=18, max=75),
    ...     Feature(name="purpose", type="categorical", categories=("car", "tv", "work")),
    ... ))
    >>> X = schema.sample_uniform(300, 0)
    >>> y = ((X.age > 40) ^ (X.purpose == "tv")).astype(int).to_numpy()
    >>> y = y.copy(); y[:30] = 1 - y[:30]  # noise, so that leaves differ in their class mix
    >>> tree = make_pipeline(make_column_transformer((OneHotEncoder(), ["purpose"]),
    ...     remainder="passthrough"), DecisionTreeClassifier(max_leaf_nodes=5, random_state=0))
    >>> result = TreePathFinding(n_uniform=500).run(Oracle(tree.fit(X, y)), AttackData(schema=schema))
    >>> result.metrics["fidelity_uniform"], result.metrics["leaves"] <= 5
    (1.0, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from finmlsec.attacks.base import ATTACKS, Attack, AttackData, Meter, Outcome
from finmlsec.attacks.extraction_common import (
    bounds,
    check_int,
    tabular_schema,
    theft_metrics,
    theft_success,
)
from finmlsec.errors import CapabilityError
from finmlsec.schema import Feature, FeatureSchema, FeatureType
from finmlsec.targets.oracle import Oracle

Box = dict[str, Any]  # field -> (lo, hi) for numbers, frozenset of categories for categoricals


class _OutOfBudget(Exception):
    pass


def _contains(box: Box, schema: FeatureSchema, X: pd.DataFrame) -> np.ndarray:
    ok = np.ones(len(X), dtype=bool)
    for f in schema.features:
        v = box[f.name]
        if f.type == FeatureType.CATEGORICAL:
            ok &= X[f.name].astype(str).isin(v).to_numpy()
        else:
            a = pd.to_numeric(X[f.name]).to_numpy(dtype=float)
            ok &= (a >= v[0]) & (a <= v[1])
    return ok


@dataclass(frozen=True)
class TreeStolenModel:
    """The extracted leaves: boxes and their outputs; a record outside every box (the search ran
    out of budget) gets the most common output."""

    schema: FeatureSchema
    boxes: tuple[Box, ...]
    outputs: np.ndarray  # (n_leaves, n_classes)
    classes_: np.ndarray

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        n_cls = len(self.classes_)
        if len(self.boxes) == 0:
            return np.full((len(X), n_cls), 1.0 / n_cls)
        default = self.outputs[0]
        out = np.tile(default, (len(X), 1))
        done = np.zeros(len(X), dtype=bool)
        for box, p in zip(self.boxes, self.outputs, strict=True):
            m = _contains(box, self.schema, X) & ~done
            out[m] = p
            done |= m
        return out

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


class _Search:
    """State of one extraction: cached answers, known thresholds, the oracle and its budget."""

    def __init__(self, oracle: Oracle, schema: FeatureSchema, pop: pd.DataFrame | None,
                 decimals: int) -> None:
        self.oracle, self.schema, self.decimals = oracle, schema, decimals
        self.cache: dict[tuple[Any, ...], np.ndarray] = {}
        self.thresholds: dict[str, set[float]] = {f.name: set() for f in schema.features}
        self.range = {f.name: bounds(f, pop) for f in schema.features
                      if f.type != FeatureType.CATEGORICAL}
        self.step = {
            f.name: (1.0 if f.type != FeatureType.NUMERIC else
                     max((self.range[f.name][1] - self.range[f.name][0]) * 1e-4, 1e-9))
            for f in schema.features if f.type != FeatureType.CATEGORICAL
        }
        self.suspects: set[str] = set()

    def answer(self, rec: dict[str, Any]) -> np.ndarray:
        key = tuple(rec[n] for n in self.schema.names)
        if key not in self.cache:
            if self.oracle.remaining is not None and self.oracle.remaining < 1:
                raise _OutOfBudget
            row = pd.DataFrame([rec], columns=self.schema.names)
            for f in self.schema.features:
                if f.type in (FeatureType.INTEGER, FeatureType.BINARY):
                    row[f.name] = row[f.name].astype(int)
            self.cache[key] = self.oracle.predict_proba(row)[0]
        return self.cache[key]

    def leaf(self, rec: dict[str, Any]) -> tuple[float, ...]:
        return tuple(np.round(self.answer(rec), self.decimals).tolist())

    # -- one leaf ------------------------------------------------------------------------------
    def explore(self, x: dict[str, Any]) -> Box:
        lid = self.leaf(x)
        items: dict[str, list[Any]] = {}
        box: Box = {}
        for f in self.schema.features:
            if f.type == FeatureType.CATEGORICAL:
                box[f.name] = {x[f.name]}
                items[f.name] = [c for c in (f.categories or ()) if c != x[f.name]]
            else:
                lo, hi = self.range[f.name]
                box[f.name] = [x[f.name], x[f.name]]
                items[f.name] = [v for v in (self._cast(f, lo), self._cast(f, hi))
                                 if v != x[f.name]]
        failed: list[tuple[str, Any]] = []
        # fields that already bounded another leaf are likely to bound this one: test their
        # values one at a time; pool the others in groups (one value per field per group)
        for name in [n for n in items if n in self.suspects]:
            for v in items.pop(name):
                self._group_test(x, lid, [(name, v)], box, failed, known_bad=False)
        while any(items.values()):
            group = [(n, vals.pop(0)) for n, vals in items.items() if vals]
            self._group_test(x, lid, group, box, failed, known_bad=False)
        self.suspects.update(name for name, _ in failed)
        for name, v in failed:
            f = self.schema[name]
            if f.type != FeatureType.CATEGORICAL:
                box[name][0 if v < x[name] else 1] = self._boundary(x, lid, f, v)
        return {f.name: (frozenset(box[f.name]) if f.type == FeatureType.CATEGORICAL
                         else tuple(box[f.name])) for f in self.schema.features}

    def _group_test(self, x: dict[str, Any], lid: tuple[float, ...], group: list[tuple[str, Any]],
                    box: Box, failed: list[tuple[str, Any]], known_bad: bool) -> None:
        if not known_bad:
            if self.leaf({**x, **dict(group)}) == lid:
                for name, v in group:
                    if isinstance(box[name], set):
                        box[name].add(v)
                    else:
                        box[name][0 if v < x[name] else 1] = v
                return
            if len(group) == 1:
                failed.append(group[0])
                return
        elif len(group) == 1:
            failed.append(group[0])
            return
        half = len(group) // 2
        first, second = group[:half], group[half:]
        before = len(failed)
        self._group_test(x, lid, first, box, failed, known_bad=False)
        self._group_test(x, lid, second, box, failed, known_bad=len(failed) == before)

    def _cast(self, f: Feature, v: float) -> Any:
        return float(v) if f.type == FeatureType.NUMERIC else int(round(v))

    def _boundary(self, x: dict[str, Any], lid: tuple[float, ...], f: Feature, out: Any) -> Any:
        """The last value from x[f] towards ``out`` (outside the leaf) that stays in the leaf.

        Known cuts ``b`` (between ``b`` and ``b + step``) found for other leaves are tried first,
        nearest first; otherwise binary search."""
        sign = 1.0 if out > x[f.name] else -1.0
        step = self.step[f.name]
        inside, outside = x[f.name], out
        known = self.thresholds[f.name]
        while abs(outside - inside) > step * 1.5:
            lo, hi = min(inside, outside), max(inside, outside)
            cands = sorted((b for b in known if lo <= b and b + step <= hi + step * 0.5),
                           key=lambda b: abs(b - inside))
            if cands:
                b = cands[0]
                in_v, out_v = (b, b + step) if sign > 0 else (b + step, b)
                in_v, out_v = self._cast(f, in_v), self._cast(f, out_v)
                if self.leaf({**x, f.name: out_v}) != lid:
                    outside = out_v
                    if in_v != inside:
                        if self.leaf({**x, f.name: in_v}) == lid:
                            inside = in_v
                        else:
                            outside = in_v
                else:
                    inside = out_v
                known = {k for k in known if k != b}
                continue
            mid = self._cast(f, (inside + outside) / 2)
            if mid in (inside, outside):
                break
            if self.leaf({**x, f.name: mid}) == lid:
                inside = mid
            else:
                outside = mid
        self.thresholds[f.name].add(float(inside) if sign > 0 else float(outside))
        return inside


def _subtract(region: Box, box: Box, schema: FeatureSchema, step: dict[str, float]) -> list[Box]:
    for f in schema.features:
        r, b = region[f.name], box[f.name]
        if f.type == FeatureType.CATEGORICAL:
            if not (r & b):
                return [region]
        elif r[1] < b[0] or r[0] > b[1]:
            return [region]
    out, cur = [], dict(region)
    for f in schema.features:
        r, b = cur[f.name], box[f.name]
        if f.type == FeatureType.CATEGORICAL:
            if r - b:
                out.append({**cur, f.name: r - b})
            cur[f.name] = r & b
        else:
            s = step[f.name]
            if r[0] < b[0]:
                out.append({**cur, f.name: (r[0], b[0] - s)})
            if r[1] > b[1]:
                out.append({**cur, f.name: (b[1] + s, r[1])})
            cur[f.name] = (max(r[0], b[0]), min(r[1], b[1]))
    return out


@ATTACKS.register("extraction.tree_path")
class TreePathFinding(Attack):
    """Copy a decision tree leaf by leaf from its probability outputs (path-finding).

    ``decimals``: outputs are compared after rounding to this many decimals (leaf identity);
    ``max_leaves``: stop after this many leaves (a target that is not a tree has no end);
    ``n_uniform``: uniform samples of the input space for the fidelity measure (evaluator side);
    ``probe_leaves``: after this many leaves, stop with CapabilityError if they are points in
    most number fields (the target is not a tree; 0 never checks). See the module docstring for an example.
    """

    name: ClassVar[str] = "extraction.tree_path"
    threat: ClassVar[str] = "infer_model"
    via: ClassVar[str] = "model_io"
    needs: ClassVar[frozenset[str]] = frozenset({"proba", "schema"})
    atlas: ClassVar[tuple[str, ...]] = ("AML.T0024.002", "AML.T0005.001")
    owasp: ClassVar[tuple[str, ...]] = ("ML05",)
    summary: ClassVar[str] = (
        "path-finding (Tramer 2016): copy a decision tree leaf by leaf from outputs that "
        "identify the leaf"
    )
    input_kinds: ClassVar[tuple[str, ...]] = ("tabular",)
    cost_rank: ClassVar[int] = 2
    strength_rank: ClassVar[int] = 3

    decimals: int = 10
    max_leaves: int = 2000
    n_uniform: int = 2000
    seed: int = 0
    probe_leaves: int = 8

    def fits(self, defences: tuple[Any, ...] = ()) -> float:
        """The copy trained without queries on the attacker's public records (a baseline)."""
        return 1.0

    def _validate(self) -> None:
        check_int("TreePathFinding", "decimals", self.decimals, 0, 15)
        check_int("TreePathFinding", "n_uniform", self.n_uniform, 0)
        check_int("TreePathFinding", "max_leaves", self.max_leaves, 1)
        check_int("TreePathFinding", "seed", self.seed, 0)
        check_int("TreePathFinding", "probe_leaves", self.probe_leaves, 0)

    def _attack(self, oracle: Oracle, data: AttackData, meter: Meter) -> Outcome:
        schema = tabular_schema(data.schema, f"attack {self.name!r}", data.population)
        pop = data.population.X if data.population is not None else None
        search = _Search(oracle, schema, pop, self.decimals)
        full: Box = {f.name: (frozenset(f.categories or ()) if f.type == FeatureType.CATEGORICAL
                              else search.range[f.name]) for f in schema.features}
        regions: list[Box] = [full]
        boxes: list[Box] = []
        outputs: list[np.ndarray] = []
        notes: list[str] = []
        curve: dict[str, list[float]] = {"queries": [], "leaves": []}
        try:
            while regions:
                if len(boxes) >= self.max_leaves:
                    notes.append(f"stopped at max_leaves={self.max_leaves}: is the target a "
                                 "decision tree? (outputs that differ everywhere look like "
                                 "one leaf per query)")
                    break
                region = regions.pop()
                x = self._point_in(region, schema, search)
                box = search.explore(x)
                boxes.append(box)
                outputs.append(search.answer(x))
                curve["queries"].append(float(meter.queries))
                curve["leaves"].append(float(len(boxes)))
                if len(boxes) == self.probe_leaves:
                    self._refuse_if_not_a_tree(boxes, schema, search, meter.queries)
                new: list[Box] = []
                for r in [*regions, region]:
                    new.extend(_subtract(r, box, schema, search.step))
                regions = new
        except _OutOfBudget:
            notes.append(f"query budget exhausted after {len(boxes)} leaves; the copy is partial")
        classes = np.asarray(oracle.classes_)
        stolen = TreeStolenModel(schema, tuple(boxes), np.asarray(outputs).reshape(-1, len(classes)),
                                 classes)
        queries = meter.queries
        m = theft_metrics(stolen, oracle.target, schema, data.test, public=data.population,
                          factory=data.model_factory, n_uniform=self.n_uniform,
                          seed=self.seed, population=pop)
        m["leaves"] = float(len(boxes))
        m["distinct_outputs"] = float(len({tuple(np.round(o, self.decimals)) for o in outputs}))
        m["queries"] = float(queries)
        success, why = theft_success(m)
        return Outcome(
            success=float(success), metrics=m,
            curves={"leaves_vs_queries": curve}, notes=tuple(notes + ([why] if why else [])),
        )

    @staticmethod
    def _refuse_if_not_a_tree(boxes: list[Box], schema: FeatureSchema, search: _Search,
                              queries: int) -> None:
        """Raise CapabilityError when the first leaves are points: a decision tree's leaf spans
        an interval of almost every number field (a field bounds a leaf on both sides of the
        record only where two of the tree's thresholds lie one step apart), whereas a model
        whose output moves with every field (a linear model, a network) has no leaf wider than
        one step. On such a target the search would find one "leaf" per record until
        ``max_leaves`` (hours of queries for a copy worse than a constant), so it stops after
        ``probe_leaves`` leaves and says why."""
        numeric = [f for f in schema.features if f.type != FeatureType.CATEGORICAL
                   and search.range[f.name][1] - search.range[f.name][0] > 2 * search.step[f.name]]
        if not numeric:
            return
        point = [sum(box[f.name][1] - box[f.name][0] <= 1.5 * search.step[f.name]
                     for f in numeric) / len(numeric) for box in boxes]
        if float(np.median(point)) >= 0.5:
            raise CapabilityError(
                f"extraction.tree_path does not apply: the target is not a decision tree (in "
                f"{len(boxes)} leaves explored with {queries} queries, a median "
                f"{float(np.median(point)):.0%} of the number fields changed the output at the "
                "smallest step; a tree's leaf spans an interval of them): extraction.equation "
                "and extraction.learning measure theft of such a model")

    @staticmethod
    def _point_in(region: Box, schema: FeatureSchema, search: _Search) -> dict[str, Any]:
        rec: dict[str, Any] = {}
        for f in schema.features:
            v = region[f.name]
            if f.type == FeatureType.CATEGORICAL:
                rec[f.name] = sorted(v, key=list(f.categories or ()).index)[0]
            else:
                rec[f.name] = search._cast(f, (v[0] + v[1]) / 2)
        return rec
