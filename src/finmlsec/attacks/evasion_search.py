"""The search behind ``evasion.constrained``: valid moves, greedy descent, anchors, reduction.

Records are encoded as a float matrix (a number as itself, a category as its index in the
schema's list, free text as its index among the values seen, a missing cell as NaN), so that
every candidate is a valid record by construction. A frozen field keeps its value, a missing one
included (the search never invents a value for it); derived fields are recomputed from their
sources after every move:

1. *Single moves*: every allowed value of every actionable field (categories; a grid of quantiles
   for numbers, rounded for integers, clipped to the range, in the monotone direction only).
2. *Greedy* (when the oracle gives scores): apply the move that raises the score of the goal most,
   repeat up to ``max_changes`` fields; stop at the cheapest move that reaches the goal.
3. *Anchors* (label-only, or where the greedy search stalls): records known to reach the goal
   (population records, or other victims' results) lend their actionable values; the cheapest
   hybrids are tried.
4. *Reduction*: undo changed fields one at a time while the goal still holds (largest saving
   first), then binary-search each changed number back towards its original value.

All victims are searched together, so each step is one batched query to the oracle.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from finmlsec.attacks.evasion_common import EvasionOutput, constraint_ok, feature_scales
from finmlsec.schema import FeatureSchema, FeatureType
from finmlsec.targets.oracle import Oracle


class _Stop(Exception):
    """The oracle's query budget would be exceeded: finish with what was found."""


class Codec:
    """Records <-> float matrix in schema order, keeping the caller's column order and dtypes."""

    def __init__(self, schema: FeatureSchema, template: pd.DataFrame,
                 extra: pd.DataFrame | None = None) -> None:
        self.schema = schema
        self.columns = list(template.columns)
        missing = [n for n in schema.names if n not in self.columns]
        if missing:
            from finmlsec.errors import DataError

            raise DataError(f"records lack the schema's column(s) {missing}")
        self.dtypes = {c: template[c].dtype for c in self.columns}
        self.cat_values: dict[str, np.ndarray] = {}
        self.text_index: dict[str, dict[Any, int]] = {}
        for f in schema.features:
            if f.type in (FeatureType.TEXT, FeatureType.IMAGE):
                values = pd.unique(pd.concat([fr[f.name] for fr in (template, extra)
                                              if fr is not None]).dropna())
                self.cat_values[f.name] = np.asarray(values, dtype=object)
                self.text_index[f.name] = {v: i for i, v in enumerate(values)}
                continue
            if f.type != FeatureType.CATEGORICAL:
                continue
            seen: dict[str, Any] = {}
            for frame in (template, extra):
                if frame is not None:
                    for v in pd.unique(frame[f.name]):
                        seen.setdefault(str(v), v)
            self.cat_values[f.name] = np.array(
                [seen.get(c, c) for c in (f.categories or ())], dtype=object
            )

    def encode(self, X: pd.DataFrame) -> np.ndarray:
        Z = np.zeros((len(X), len(self.schema.features)))
        for j, f in enumerate(self.schema.features):
            missing = X[f.name].isna().to_numpy()
            if f.name in self.text_index:
                index = self.text_index[f.name]
                Z[:, j] = [np.nan if m else index.get(v, np.nan)
                           for v, m in zip(X[f.name], missing, strict=True)]
            elif f.type == FeatureType.CATEGORICAL:
                index = {c: i for i, c in enumerate(f.categories or ())}
                Z[:, j] = [np.nan if m else index.get(str(v), -1)
                           for v, m in zip(X[f.name], missing, strict=True)]
            else:
                Z[:, j] = pd.to_numeric(X[f.name], errors="coerce").to_numpy(dtype=float)
        return Z

    def decode(self, Z: np.ndarray) -> pd.DataFrame:
        cols: dict[str, Any] = {}
        for j, f in enumerate(self.schema.features):
            dt = self.dtypes[f.name]
            z = Z[:, j]
            na = np.isnan(z)
            if f.name in self.cat_values:
                values = self.cat_values[f.name]
                col = np.empty(len(z), dtype=object)
                col[na] = np.nan
                col[~na] = values[z[~na].astype(int)] if len(values) else np.nan
                cols[f.name] = col
            elif pd.api.types.is_integer_dtype(dt) and not na.any():
                cols[f.name] = np.round(z).astype(dt)
            else:
                cols[f.name] = z.astype(float)
        return self.schema.derive(pd.DataFrame(cols)[self.columns])


def _grids(schema: FeatureSchema, Z_ref: np.ndarray, n_grid: int) -> list[np.ndarray]:
    """Candidate values of each field (empty for fields the attacker may not change)."""
    grids: list[np.ndarray] = []
    for j, f in enumerate(schema.features):
        if not f.mutable:
            grids.append(np.array([]))
        elif f.type == FeatureType.CATEGORICAL:
            grids.append(np.arange(len(f.categories or ()), dtype=float))
        elif f.type == FeatureType.BINARY:
            grids.append(np.array([0.0, 1.0]))
        else:
            col = Z_ref[:, j][np.isfinite(Z_ref[:, j])]
            vals = np.quantile(col, np.linspace(0, 1, n_grid)) if col.size else np.array([])
            ends = [v for v in (f.min, f.max) if v is not None]
            vals = np.concatenate([vals, ends]) if ends else vals
            if f.min is not None or f.max is not None:
                vals = np.clip(vals, f.min, f.max)
            if f.type == FeatureType.INTEGER:
                vals = np.round(vals)
            grids.append(np.unique(vals))
    return grids


class _Search:
    def __init__(self, att: Any, oracle: Oracle, X: pd.DataFrame, schema: FeatureSchema,
                 goal: Any, y: np.ndarray | None, population: pd.DataFrame | None) -> None:
        self.att, self.oracle, self.schema, self.goal = att, oracle, schema, goal
        self.codec = Codec(schema, X, population)
        self.Z0 = self.codec.encode(X)
        self.population = population
        scales = feature_scales(schema, population, X)
        feats = schema.features
        self.w = np.array([f.cost / (scales[f.name] if f.is_numeric else 1.0) for f in feats])
        self.fill_cost = np.array([f.cost for f in feats])  # a missing cell given a value
        self.is_cat = np.array([f.type == FeatureType.CATEGORICAL for f in feats])
        self.mono = np.array([0 if f.monotone is None else (1 if f.monotone == "increasing"
                              else -1) for f in feats])
        self.integer = np.array([f.type in (FeatureType.INTEGER, FeatureType.BINARY)
                                 for f in feats])
        ref = self.codec.encode(population) if population is not None else self.Z0
        self.grids = _grids(schema, np.vstack([ref, self.Z0]), att.n_grid)
        self.use_scores = "proba" in oracle.provides
        self.classes = np.asarray(oracle.classes_)
        self.ref = y  # untargeted reference labels (set in run if None)

    # -- oracle ----------------------------------------------------------------------------------
    def ask(self, Z: np.ndarray, owner: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Goal reached per row, and the goal score per row (None if label-only)."""
        if len(Z) == 0:
            return np.zeros(0, dtype=bool), np.zeros(0)
        rem = self.oracle.remaining
        if rem is not None and rem < len(Z):
            raise _Stop
        X = self.codec.decode(Z)
        if self.use_scores:
            p = self.oracle.predict_proba(X)
            labels = self.oracle.decide(p)  # at the bank's cut-off where it has one
        else:
            labels = self.oracle.predict(X)
            p = None
        if self.goal is not None:
            met = labels == self.goal
            score = None if p is None else p[:, int(np.flatnonzero(self.classes == self.goal)[0])]
        else:
            assert self.ref is not None
            ref = self.ref[owner]
            met = labels != ref
            if p is None:
                score = None
            else:
                col = np.searchsorted(self.classes, ref)
                score = 1.0 - p[np.arange(len(p)), col]
        return np.asarray(met, dtype=bool), score

    def cost(self, Z: np.ndarray, owner: np.ndarray) -> np.ndarray:
        Z0 = self.Z0[owner]
        d = Z - Z0
        one_na = np.isnan(Z) != np.isnan(Z0)  # a missing cell filled (or emptied)
        per = np.where(self.is_cat, (d != 0).astype(float), np.abs(d))
        per = np.nan_to_num(per, nan=0.0)  # missing to missing: no change
        return per @ self.w + one_na @ self.fill_cost

    def allowed(self, i: int, j: int, current: float) -> np.ndarray:
        g = self.grids[j]
        z0 = self.Z0[i, j]
        g = g[(g != z0) & (g != current)]
        if self.mono[j] > 0:
            g = g[g > z0]
        elif self.mono[j] < 0:
            g = g[g < z0]
        return g

    # -- phases ------------------------------------------------------------------------------------
    def greedy(self, best: np.ndarray, found: np.ndarray) -> None:
        n, d = self.Z0.shape
        cur = self.Z0.copy()
        changed = np.zeros((n, d), dtype=bool)
        cur_score = np.full(n, -np.inf)
        active = ~found
        for _ in range(self.att.max_changes):
            idx = np.flatnonzero(active)
            if idx.size == 0:
                return
            blocks, owners, feats = [], [], []
            for i in idx:
                for j in range(d):
                    if changed[i, j]:
                        continue
                    vals = self.allowed(int(i), j, cur[i, j])
                    if vals.size == 0:
                        continue
                    b = np.repeat(cur[i][None, :], vals.size, axis=0)
                    b[:, j] = vals
                    blocks.append(b)
                    owners.append(np.full(vals.size, i))
                    feats.append(np.full(vals.size, j))
            if not blocks:
                return
            C, own, fj = np.vstack(blocks), np.concatenate(owners), np.concatenate(feats)
            met, score = self.ask(C, own)
            cost = self.cost(C, own)
            for i in idx:
                rows = np.flatnonzero(own == i)
                if rows.size == 0:
                    active[i] = False
                    continue
                hit = rows[met[rows]]
                if hit.size:
                    k = hit[np.argmin(cost[hit])]
                    best[i], found[i], active[i] = C[k], True, False
                elif score is None:
                    active[i] = False
                else:
                    k = rows[np.lexsort((cost[rows], -score[rows]))[0]]
                    if score[k] <= cur_score[i] + 1e-12:
                        active[i] = False
                    else:
                        cur[i], cur_score[i], changed[i, fj[k]] = C[k], score[k], True

    def anchors(self, best: np.ndarray, found: np.ndarray) -> None:
        todo = np.flatnonzero(~found)
        if todo.size == 0 or self.att.n_anchors == 0:
            return
        if self.population is not None:
            pool = self.codec.encode(self.population)
            movable = np.array([f.mutable for f in self.schema.features])
            # records lend only the fields the victim may change: those must be known values
            pool = pool[np.all(~(self.is_cat & movable)[None, :] | (pool >= 0), axis=1)]
            pool = pool[np.all(np.isfinite(pool) | ~movable[None, :], axis=1)]
            if self.goal is not None:
                met, _ = self.ask(pool, np.zeros(len(pool), dtype=int))
                pool = pool[met]
        else:
            pool = best[found]
        if len(pool) == 0:
            return
        mutable = np.array([f.mutable for f in self.schema.features])
        blocks, owners = [], []
        for i in todo:
            H = np.where(mutable[None, :], pool, self.Z0[i][None, :])
            step = H - self.Z0[i][None, :]
            bad = ((self.mono > 0) & (step < 0)) | ((self.mono < 0) & (step > 0))
            H = np.where(bad, self.Z0[i][None, :], H)
            H = np.unique(H, axis=0)
            c = self.cost(H, np.full(len(H), i))
            H = H[np.argsort(c, kind="stable")[: self.att.n_anchors]]
            blocks.append(H)
            owners.append(np.full(len(H), i))
        C, own = np.vstack(blocks), np.concatenate(owners)
        met, _ = self.ask(C, own)
        cost = self.cost(C, own)
        for i in todo:
            hit = np.flatnonzero((own == i) & met)
            if hit.size:
                best[i], found[i] = C[hit[np.argmin(cost[hit])]], True

    def reduce(self, best: np.ndarray, found: np.ndarray) -> None:
        active = found.copy()
        d = self.Z0.shape[1]
        for _ in range(d):
            idx = np.flatnonzero(active)
            blocks, owners = [], []
            for i in idx:
                diff = np.flatnonzero(_differs(best[i], self.Z0[i]))
                if diff.size <= 1:
                    active[i] = False
                    continue
                b = np.repeat(best[i][None, :], diff.size, axis=0)
                b[np.arange(diff.size), diff] = self.Z0[i, diff]
                blocks.append(b)
                owners.append(np.full(diff.size, i))
            if not blocks:
                break
            C, own = np.vstack(blocks), np.concatenate(owners)
            met, _ = self.ask(C, own)
            cost = self.cost(C, own)
            for i in np.unique(own):
                hit = np.flatnonzero((own == i) & met)
                if hit.size:
                    best[i] = C[hit[np.argmin(cost[hit])]]
                else:
                    active[i] = False
        # binary search of changed numbers towards the original value
        for j in np.flatnonzero(~self.is_cat):
            idx = np.flatnonzero(found & _differs(best[:, j], self.Z0[:, j])
                                 & np.isfinite(self.Z0[:, j]) & np.isfinite(best[:, j]))
            lo, hi = self.Z0[idx, j].copy(), best[idx, j].copy()
            for _ in range(self.att.refine_steps):
                mid = (lo + hi) / 2
                if self.integer[j]:
                    mid = np.where(hi > lo, np.floor(mid), np.ceil(mid))
                live = (mid != lo) & (mid != hi)
                if not live.any():
                    break
                C = best[idx[live]].copy()
                C[:, j] = mid[live]
                met, _ = self.ask(C, idx[live])
                sel = np.flatnonzero(live)
                hi[sel[met]] = mid[sel[met]]
                lo[sel[~met]] = mid[sel[~met]]
                best[idx[sel[met]], j] = mid[sel[met]]


def _differs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise a != b, where two missing values are equal."""
    return np.asarray((a != b) & ~(np.isnan(a) & np.isnan(b)), dtype=bool)


def search(att: Any, oracle: Oracle, X: pd.DataFrame, schema: FeatureSchema, goal: Any,
           y: np.ndarray | None, population: pd.DataFrame | None) -> EvasionOutput:
    """Run the phases for all rows of ``X``; see the module docstring."""
    q0 = oracle.queries_used
    s = _Search(att, oracle, X, schema, goal, y, population)
    n = len(X)
    best = s.Z0.copy()
    found = np.zeros(n, dtype=bool)
    try:
        if s.ref is None and goal is None and n:
            if oracle.remaining is not None and oracle.remaining < n:
                raise _Stop
            s.ref = np.asarray(oracle.predict(X))
        if goal is not None or s.ref is not None:
            met, _ = s.ask(s.Z0, np.arange(n))
            found |= met
        s.greedy(best, found)
        s.anchors(best, found)
        s.reduce(best, found)
    except _Stop:
        pass
    X_adv = s.codec.decode(best)
    success = found
    rem = oracle.remaining
    if n and (rem is None or rem >= n):
        labels = np.asarray(oracle.predict(X_adv))
        success = labels == goal if goal is not None else labels != s.ref
    valid = constraint_ok(schema, X, X_adv)
    return EvasionOutput(X_adv=X_adv, success=np.asarray(success, dtype=bool), valid=valid,
                         queries=oracle.queries_used - q0)
