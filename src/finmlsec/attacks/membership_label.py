"""Label-only membership inference (Choquette-Choo et al. 2021): members sit further from the
decision boundary, so their label survives small valid perturbations more often.

For each candidate the attack queries the record and ``n_perturb`` valid neighbours (numbers moved
by Gaussian noise of ``noise`` standard deviations and projected on the schema, categories
resampled with probability ``p_change``); the score is the share of answers equal to the true
label. With ``calibrate=True`` it subtracts the same share computed, without queries, on reference
models that did not train on the record (per-example calibration, as in Watson et al. 2022).

Example:
    >>> LabelOnly(n_perturb=10).n_perturb
    10
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from finmlsec.attacks.base import ATTACKS, INPUT_KINDS, Attack, AttackData, Meter, Outcome
from finmlsec.attacks.extraction_common import bounds, check_int, tabular_schema, truth_labels
from finmlsec.attacks.membership_common import candidates, membership_result
from finmlsec.attacks.membership_lira import train_references
from finmlsec.errors import ConfigError
from finmlsec.schema import FeatureSchema, FeatureType
from finmlsec.targets.oracle import Oracle


def perturb(schema: FeatureSchema, X: pd.DataFrame, k: int, noise: float, p_change: float,
            rng: np.random.Generator, population: pd.DataFrame | None) -> pd.DataFrame:
    """``k`` valid neighbours of every row of ``X`` (row i's neighbours at i*k ... i*k+k-1)."""
    rep = X.loc[X.index.repeat(k)].reset_index(drop=True)
    n = len(rep)
    for f in schema.features:
        if f.type == FeatureType.CATEGORICAL:
            cats = np.array(f.categories or ())
            change = rng.random(n) < p_change
            rep.loc[change, f.name] = cats[rng.integers(0, len(cats), size=int(change.sum()))]
            continue
        lo, hi = bounds(f, population)
        if population is not None and f.name in population:
            sd = float(pd.to_numeric(population[f.name]).std()) or (hi - lo) / 4
        else:
            sd = (hi - lo) / 4
        vals = pd.to_numeric(rep[f.name]).to_numpy(dtype=float) + rng.normal(0, noise * sd, n)
        rep[f.name] = vals
    return schema.project(rep)[schema.names]


@ATTACKS.register("membership.label_only")
class LabelOnly(Attack):
    """Label robustness under ``n_perturb`` valid perturbations per candidate. See the module
    docstring."""

    name: ClassVar[str] = "membership.label_only"
    threat: ClassVar[str] = "infer_training_data"
    via: ClassVar[str] = "model_io"
    needs: ClassVar[frozenset[str]] = frozenset({"label", "schema", "members", "nonmembers"})
    atlas: ClassVar[tuple[str, ...]] = ("AML.T0024.000",)
    owasp: ClassVar[tuple[str, ...]] = ("ML04",)
    summary: ClassVar[str] = (
        "label-only (Choquette-Choo 2021): robustness of the decision under valid perturbations"
    )
    input_kinds: ClassVar[tuple[str, ...]] = INPUT_KINDS
    cost_rank: ClassVar[int] = 3
    strength_rank: ClassVar[int] = 6

    n_perturb: int = 20
    noise: float = 0.3
    p_change: float = 0.1
    calibrate: bool = False
    n_reference: int = 8
    seed: int = 0

    def fits(self, defences: tuple[Any, ...] = ()) -> float:
        """``n_reference`` reference models when calibrated, else none."""
        return float(self.n_reference if self.calibrate else 0)

    def _validate(self) -> None:
        check_int("LabelOnly", "n_perturb", self.n_perturb, 1, 10_000)
        check_int("LabelOnly", "n_reference", self.n_reference, 1, 1024)
        check_int("LabelOnly", "seed", self.seed, 0)
        for pname, v in (("noise", self.noise), ("p_change", self.p_change)):
            if not isinstance(v, int | float) or not 0 <= v <= (1 if pname == "p_change" else 10):
                raise ConfigError(f"The {pname!r} parameter of LabelOnly must be a float in "
                                  f"[0, {1 if pname == 'p_change' else 10}]. Got {v!r} instead.")

    def required(self) -> frozenset[str]:
        return self.needs | ({"population", "model_factory"} if self.calibrate else set())

    def _attack(self, oracle: Oracle, data: AttackData, meter: Meter) -> Outcome:
        schema = tabular_schema(data.schema, f"attack {self.name!r}", data.population)
        per = 1 + self.n_perturb
        limit = None if oracle.remaining is None else oracle.remaining // per
        cands, notes = candidates(data, limit, self.seed)
        pop = data.population.X if data.population is not None else None
        rng = np.random.default_rng(self.seed)
        X = cands.X.reset_index(drop=True)
        neigh = perturb(schema, X, self.n_perturb, self.noise, self.p_change, rng, pop)
        allX = pd.concat([X, neigh], ignore_index=True)
        truth = truth_labels(oracle.classes_, cands.y)
        pred = oracle.predict(allX)
        score = self._robustness(pred, truth, len(X))
        if self.calibrate:
            refs = train_references(data, self.n_reference, self.seed)
            out = ~refs.membership_of(X)
            # the references learnt the dataset's labels (cands.y), not the target's classes:
            # their decisions (at the bank's cut-off, as the target's) are compared with those
            rs = np.stack([self._robustness(np.asarray(m.predict(allX)), np.asarray(cands.y),
                                            len(X)) for m in refs.models])
            n_out = out.sum(axis=0)
            ref = np.where(n_out > 0, np.where(out, rs, 0).sum(axis=0) / np.maximum(n_out, 1),
                           rs.mean(axis=0))
            score = score - ref
        notes.append(f"{self.n_perturb} perturbations per record"
                     + (f", calibrated on {self.n_reference} reference models"
                        if self.calibrate else ""))
        return membership_result(score, cands, notes)

    def _robustness(self, pred: np.ndarray, truth: np.ndarray, n: int) -> Any:
        base = (pred[:n] == truth).astype(float)
        neigh = (pred[n:].reshape(n, self.n_perturb) == truth[:, None]).mean(axis=1)
        return base + neigh
