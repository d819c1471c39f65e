"""White-box PGD (``evasion.pgd``) and the transfer attack through a stolen model
(``evasion.transfer``).

PGD (Madry et al. 2018) takes signed gradient steps of the loss with respect to the input, read
through ``oracle.gradient`` (``access="white_box"`` on a differentiable target such as
:class:`~finmlsec.targets.torch.TorchTarget`), projected after each step onto the L-infinity ball
of radius ``eps`` around the original and onto the valid box (the schema's ranges, or
``clip_min``/``clip_max``); fields the schema marks immutable get no step, integer fields are
rounded at the end. A row stops moving once it reaches the goal.

Transfer (Papernot et al. 2017): the attacker steals a surrogate from the target's labels
(population records, then rounds of valid perturbations near them, each queried and added) and
crafts on the surrogate offline with ``evasion.constrained``; the crafted records are replayed
once against the target. Queries to the target: the stealing set plus one per victim.

Example:
    >>> import numpy as np, torch
    >>> from finmlsec.targets.torch import TorchTarget
    >>> from finmlsec.targets.oracle import Oracle
    >>> _ = torch.manual_seed(0)
    >>> lin = torch.nn.Linear(2, 2)
    >>> with torch.no_grad():
    ...     _ = lin.weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
    ...     _ = lin.bias.copy_(torch.tensor([-0.5, 0.5]))
    >>> oracle = Oracle(TorchTarget(lin, classes=[0, 1]), access="white_box")
    >>> out = PGD(eps=0.4, iterations=10).generate(oracle, np.array([[0.7, 0.5], [1.0, 0.5]]))
    >>> out.success.tolist(), out.valid.tolist()
    ([True, False], [True, True])
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from finmlsec.attacks.base import ATTACKS, INPUT_KINDS, Attack, AttackData, Meter, Outcome
from finmlsec.attacks.evasion import ConstrainedEvasion
from finmlsec.attacks.evasion_chance import DRAWS, noise_chance, rated, tabular_chance_of
from finmlsec.attacks.evasion_common import (
    EvasionOutput,
    check_positive,
    evasion_result,
    feature_scales,
    goal_of,
    resolve_class,
    victims_against,
)
from finmlsec.datasets.schema_infer import infer_schema
from finmlsec.errors import ConfigError, DataError
from finmlsec.schema import FeatureSchema, FeatureType
from finmlsec.targets.oracle import Oracle


def _bounds(schema: FeatureSchema | None, d: int, lo: float | None, hi: float | None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-column lower/upper bounds, a mask of columns allowed to move, a mask of integers."""
    low = np.full(d, -np.inf if lo is None else lo)
    high = np.full(d, np.inf if hi is None else hi)
    move = np.ones(d, dtype=bool)
    integer = np.zeros(d, dtype=bool)
    if schema is not None and len(schema.features) == d:
        for j, f in enumerate(schema.features):
            if f.type == FeatureType.CATEGORICAL:
                raise DataError(
                    f"evasion.pgd needs numeric inputs; feature {f.name!r} is categorical; use "
                    "evasion.constrained for mixed tabular records"
                )
            low[j] = f.min if f.min is not None else low[j]
            high[j] = f.max if f.max is not None else high[j]
            move[j] = f.mutable
            integer[j] = f.type in (FeatureType.INTEGER, FeatureType.BINARY)
    return low, high, move, integer


@ATTACKS.register("evasion.pgd")
class PGD(Attack):
    """Projected gradient descent in L-infinity (white-box); see the module docstring.

    Parameters: ``eps`` (radius, in input units), ``step`` (per iteration; default eps/4),
    ``iterations``, ``random_start``, ``target_class`` (None: any other decision than the true
    label, or the current one), ``clip_min``/``clip_max`` (the valid box when there is no
    schema), ``baseline_draws`` (random sign perturbations of radius ``eps`` per victim for the
    no-model baseline, see :mod:`finmlsec.attacks.evasion_chance`), ``seed``.
    """

    name: ClassVar[str] = "evasion.pgd"
    threat: ClassVar[str] = "induce_false_prediction"
    via: ClassVar[str] = "model_io"
    needs: ClassVar[frozenset[str]] = frozenset({"gradient", "victims"})
    atlas: ClassVar[tuple[str, ...]] = ("AML.T0015", "AML.T0043.000")
    owasp: ClassVar[tuple[str, ...]] = ("ML01",)
    summary: ClassVar[str] = "White-box projected gradient descent (L-infinity) on differentiable models"
    input_kinds: ClassVar[tuple[str, ...]] = INPUT_KINDS
    cost_rank: ClassVar[int] = 4
    strength_rank: ClassVar[int] = 4
    generates: ClassVar[bool] = True

    eps: float = 0.1
    step: float | None = None
    iterations: int = 20
    random_start: bool = True
    target_class: str | int | None = None
    clip_min: float | None = 0.0
    clip_max: float | None = 1.0
    baseline_draws: int = DRAWS
    seed: int = 0

    def generate(self, oracle: Oracle, X: Any, y: Any = None,
                 schema: FeatureSchema | None = None) -> EvasionOutput:
        o = type(self).__name__
        check_positive(o, "eps", self.eps)
        check_positive(o, "iterations", self.iterations, integer=True, hi=10_000)
        check_positive(o, "baseline_draws", self.baseline_draws, integer=True, hi=10_000)
        if self.step is not None:
            check_positive(o, "step", self.step)
        oracle.require({"gradient"}, who=f"attack {self.name!r}")
        q0 = oracle.queries_used
        frame = X if isinstance(X, pd.DataFrame) else None
        X0 = np.asarray(X, dtype=float)
        shape = X0.shape
        X0 = X0.reshape(len(X0), -1)
        classes = np.asarray(oracle.classes_)
        goal = resolve_class(self.target_class, classes, schema)
        ref = np.asarray(oracle.predict(X0.reshape(shape))) if y is None else np.asarray(y)
        if y is not None and not np.isin(ref, classes).all():
            ref = classes[ref.astype(int)]  # labels given as indices
        lab_idx = np.searchsorted(classes, ref)
        tgt_idx = None if goal is None else np.full(len(X0), int(np.flatnonzero(classes == goal)[0]))
        low, high, move, integer = _bounds(schema, X0.shape[1], self.clip_min, self.clip_max)
        lo = np.maximum(X0 - self.eps, low)
        hi = np.minimum(X0 + self.eps, high)
        rng = np.random.default_rng(self.seed)
        Xa = X0.copy()
        if self.random_start:
            Xa = np.clip(Xa + rng.uniform(-self.eps, self.eps, X0.shape) * move, lo, hi)
        step = self.step if self.step is not None else self.eps / 4
        done = np.zeros(len(X0), dtype=bool)

        def reached(idx: np.ndarray, Z: np.ndarray) -> np.ndarray:
            pred = np.asarray(oracle.predict(Z.reshape((len(idx), *shape[1:]))))
            return pred == goal if goal is not None else pred != ref[idx]

        for _ in range(self.iterations):
            act = np.flatnonzero(~done)
            if act.size == 0:
                break
            if tgt_idx is None:
                g = oracle.gradient(Xa[act].reshape((act.size, *shape[1:])), lab_idx[act])
                direction = np.sign(g.reshape(act.size, -1))
            else:
                g = oracle.gradient(Xa[act].reshape((act.size, *shape[1:])), tgt_idx[act])
                direction = -np.sign(g.reshape(act.size, -1))
            Xa[act] = np.clip(Xa[act] + step * direction * move, lo[act], hi[act])
            done[act] = reached(act, Xa[act])
        Xa = np.where(integer, np.round(Xa), Xa)
        Xa = np.clip(Xa, low, high)
        every = np.arange(len(X0))
        success = reached(every, Xa) if len(X0) else np.zeros(0, dtype=bool)
        valid = ((Xa >= low - 1e-9) & (Xa <= high + 1e-9)).all(axis=1)
        valid &= (np.abs(Xa - X0) <= self.eps + 1e-9 + integer * 1.0).all(axis=1)
        valid &= (Xa[:, ~move] == X0[:, ~move]).all(axis=1)
        out: Any = Xa.reshape(shape)
        if frame is not None:
            out = pd.DataFrame(Xa, columns=frame.columns).astype(
                {c: frame[c].dtype for c in frame.columns if pd.api.types.is_integer_dtype(frame[c])})
        return EvasionOutput(X_adv=out, success=np.asarray(success, dtype=bool), valid=valid,
                             queries=oracle.queries_used - q0)

    def _attack(self, oracle: Oracle, data: AttackData, meter: Meter) -> Outcome:
        assert data.victims is not None
        from finmlsec.attacks.evasion_image import keep_against

        # the schema's favourable outcome is the goal unless one is given (a move away from it
        # is no success for the applicant); with neither, any misclassification counts
        goal, notes = goal_of(self.target_class, oracle, data.schema)
        me = self if self.target_class is not None or goal is None else dataclasses.replace(
            self, target_class=goal)
        frame = data.victims.X if isinstance(data.victims.X, pd.DataFrame) else None
        X, keep, pred = keep_against(oracle, data.victims.X, data.victims.y, goal)
        if frame is not None:
            X = frame[keep].reset_index(drop=True)
        out = me.generate(oracle, X, pred, data.schema)
        X0 = np.asarray(X, dtype=float).reshape(len(out.success), -1)
        Xa = np.asarray(out.X_adv, dtype=float).reshape(len(out.success), -1)
        won = out.success & out.valid
        n = len(won)
        m = {
            "n_victims": float(n),
            "n_already_at_goal": float((~keep).sum()),
            "success_rate": float(won.mean()) if n else 0.0,
            "validity_rate": float(out.valid.mean()) if n else 1.0,
            "mean_linf": float(np.abs(Xa - X0).max(axis=1)[won].mean()) if won.any() else float("nan"),
            "mean_l2": float(np.linalg.norm(Xa - X0, axis=1)[won].mean()) if won.any() else float("nan"),
            "median_features_changed": float(np.median((~np.isclose(Xa, X0)).sum(axis=1)[won]))
            if won.any() else float("nan"),
            "queries_per_victim": meter.queries / n if n else 0.0,
        }
        p, any_, cost = self.chance(oracle, X, out, goal, pred, data.schema)
        return rated(Outcome(m["success_rate"], m, notes=notes), won, p, any_,
                     self.baseline_draws, cost)

    def chance(self, oracle: Oracle, X0: Any, out: EvasionOutput, goal: Any,
               ref: np.ndarray | None, schema: FeatureSchema | None = None,
               population: Any = None, accept: Any = None,
               ) -> tuple[np.ndarray, np.ndarray, str]:
        """Per victim, the share of ``baseline_draws`` random sign perturbations of radius
        ``eps`` (the attack's budget; immutable fields kept, the valid box, integers rounded)
        that turn it, whether any does, and the words for the cost; evaluator side. See
        :mod:`finmlsec.attacks.evasion_chance`."""
        X = np.asarray(X0, dtype=float)  # the attack's own queries are arrays too
        low, high, move, integer = _bounds(schema, X.reshape(len(X), -1).shape[1],
                                           self.clip_min, self.clip_max)
        p, any_ = noise_chance(oracle.target, X, self.eps, low, high, move, integer, goal, ref,
                               self.baseline_draws, self.seed, accept=accept)
        return p, any_, f"of the same L-infinity radius {self.eps:g}"


# -- transfer -------------------------------------------------------------------------------------
def surrogate_model(kind: str, schema: FeatureSchema, seed: int) -> Any:
    """An unfitted scikit-learn pipeline for records of ``schema``: the shared tabular encoding
    (one-hot categories as seen in the data, imputed and standardised numbers; see
    :func:`finmlsec.schema.preprocessor`); free-text fields are left out of the surrogate (the
    crafting keeps them as they are)."""
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from finmlsec.schema import preprocessor

    tabular = [f for f in schema.features if f.type not in (FeatureType.TEXT, FeatureType.IMAGE)]
    if not tabular:
        raise DataError("evasion.transfer needs tabular fields; this schema has only text or "
                        "image fields")
    enc = preprocessor(schema.model_copy(update={"features": tuple(tabular)}), categories="data")
    est: Any
    if kind == "forest":
        est = RandomForestClassifier(n_estimators=100, random_state=seed, n_jobs=1)
    elif kind == "boosting":
        est = HistGradientBoostingClassifier(random_state=seed)
    elif kind == "logistic":
        est = LogisticRegression(max_iter=2000)
    else:
        raise ConfigError(
            f"The 'surrogate' parameter of TransferEvasion must be one of ['forest', 'boosting', "
            f"'logistic']. Got {kind!r} instead."
        )
    return make_pipeline(enc, est)


def perturb_valid(schema: FeatureSchema, X: pd.DataFrame, n_fields: int,
                  rng: np.random.Generator,
                  population: pd.DataFrame | None = None) -> pd.DataFrame:
    """Copies of ``X`` with ``n_fields`` random fields per row replaced by valid values: drawn
    from the ``population`` records' values of each field where given (a field without a
    declared range, free text and missing cells included), else uniformly over the schema's
    ranges and categories; derived fields are recomputed from their sources."""
    from finmlsec.attacks.extraction_common import sample_records

    out = X.copy().reset_index(drop=True)
    fresh = (sample_records(schema, len(out), rng, population, "marginal")
             if population is not None and len(population) else
             schema.sample_uniform(len(out), rng))
    names = [f.name for f in schema.features if f.derived is None]
    for i in range(len(out)):
        for c in rng.choice(names, size=min(n_fields, len(names)), replace=False):
            out.at[i, c] = fresh.at[i, c]
    out = schema.derive(out)
    return out.astype({c: X[c].dtype for c in X.columns})


class _Margin:
    """A surrogate whose decision is the goal class only when its probability is at least
    ``kappa`` (crafting with a margin makes the examples transfer better)."""

    def __init__(self, model: Any, goal: Any, kappa: float) -> None:
        self.model, self.classes_ = model, np.asarray(model.classes_)
        self.col = int(np.flatnonzero(self.classes_ == goal)[0])
        self.c = kappa / (1.0 - kappa)

    def predict_proba(self, X: Any) -> np.ndarray:
        p = np.asarray(self.model.predict_proba(X), dtype=float).copy()
        others = np.arange(p.shape[1]) != self.col
        p[:, others] *= self.c
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


@ATTACKS.register("evasion.transfer")
class TransferEvasion(Attack):
    """Craft on a surrogate stolen with query-and-retrain, replay against the target.

    Parameters: ``n_seed`` (population records labelled by the target), ``rounds`` and
    ``fields_perturbed`` (augmentation: each round perturbs every stolen record in that many
    fields and labels the copies through the target; the surrogate is fit on all of them), ``surrogate`` (``forest``,
    ``boosting`` or ``logistic``), ``margin`` (craft until the surrogate gives the goal at least
    this probability; binary or targeted goals), ``target_class``, ``baseline_draws`` (random
    valid changes of the same cost per victim for the no-model baseline, see
    :mod:`finmlsec.attacks.evasion_chance`), ``seed``. Tabular records only.
    """

    name: ClassVar[str] = "evasion.transfer"
    threat: ClassVar[str] = "induce_false_prediction"
    via: ClassVar[str] = "model_io"
    needs: ClassVar[frozenset[str]] = frozenset({"label", "population", "victims", "schema"})
    atlas: ClassVar[tuple[str, ...]] = ("AML.T0015", "AML.T0043.002", "AML.T0005.001")
    owasp: ClassVar[tuple[str, ...]] = ("ML01", "ML05")
    summary: ClassVar[str] = "Transfer evasion through a surrogate stolen from the target's labels"
    input_kinds: ClassVar[tuple[str, ...]] = ("tabular",)
    cost_rank: ClassVar[int] = 5
    strength_rank: ClassVar[int] = 5
    generates: ClassVar[bool] = True

    n_seed: int = 200
    rounds: int = 2
    fields_perturbed: int = 2
    surrogate: str = "forest"
    margin: float = 0.75
    target_class: str | int | None = None
    baseline_draws: int = DRAWS
    seed: int = 0

    @classmethod
    def contract_fixture(cls) -> dict[str, Any]:
        """Small parameters for the common attack contract tests."""
        return {"params": {"n_seed": 100, "rounds": 1}}

    def generate(self, oracle: Oracle, X: Any, y: Any = None, schema: FeatureSchema | None = None,
                 *, population: pd.DataFrame | None = None) -> EvasionOutput:
        o = type(self).__name__
        check_positive(o, "n_seed", self.n_seed, integer=True, hi=1_000_000)
        check_positive(o, "rounds", self.rounds, integer=True, lo=0, closed_lo=True, hi=20)
        check_positive(o, "fields_perturbed", self.fields_perturbed, integer=True, hi=1000)
        check_positive(o, "margin", self.margin, lo=0.0, hi=0.999)
        check_positive(o, "baseline_draws", self.baseline_draws, integer=True, hi=10_000)
        if not isinstance(X, pd.DataFrame):
            raise DataError(f"evasion.transfer works on tabular records; got {type(X).__name__}")
        schema = schema or infer_schema(X).schema
        q0 = oracle.queries_used
        rng = np.random.default_rng(self.seed)
        seeds = population if population is not None else X
        take = rng.permutation(len(seeds))[: self.n_seed]
        S = seeds.iloc[take].reset_index(drop=True)[list(X.columns)]
        labels = np.asarray(oracle.predict(S))
        model = surrogate_model(self.surrogate, schema, self.seed)
        for _round in range(self.rounds):
            new = perturb_valid(schema, S, self.fields_perturbed, rng, population=seeds)
            S = pd.concat([S, new], ignore_index=True)
            labels = np.concatenate([labels, np.asarray(oracle.predict(new))])
        if len(np.unique(labels)) < 2:
            raise DataError(
                f"the model answered {labels[0]!s} to all {len(S)} records queried (population "
                "records and perturbations of them), so there is no boundary to copy: a model "
                "that decides alike for everyone (check its utility), or too few population "
                "records (give more)")
        model.fit(S, labels)
        self._stolen = (len(S), float(np.mean(model.predict(S) == labels)))
        goal = resolve_class(self.target_class, oracle.classes_, schema)
        if self.target_class is None and y is None:
            y = np.asarray(oracle.predict(X))
        classes = np.asarray(model.classes_)
        want = goal
        if want is None and len(classes) == 2 and y is not None and len(np.unique(y)) == 1:
            want = classes[classes != np.asarray(y)[0]][0]
        local_model = _Margin(model, want, self.margin) if want is not None else model
        crafter = ConstrainedEvasion(target_class=want, seed=self.seed)
        crafted = crafter.generate(Oracle(local_model, access="proba"), X, y, schema,
                                   population=S)
        pred = np.asarray(oracle.predict(crafted.X_adv))
        success = pred == goal if goal is not None else pred != np.asarray(y)
        return EvasionOutput(X_adv=crafted.X_adv, success=np.asarray(success, dtype=bool),
                             valid=crafted.valid, queries=oracle.queries_used - q0)

    def _attack(self, oracle: Oracle, data: AttackData, meter: Meter) -> Outcome:
        assert data.schema is not None and data.victims is not None
        assert data.population is not None
        # the goal is the applicant's favourable outcome (the schema's) unless one is given:
        # a move away from it is no success for the applicant
        goal, notes = goal_of(self.target_class, oracle, data.schema)
        me = self if self.target_class is not None or goal is None else dataclasses.replace(
            self, target_class=goal)
        X0, ref, n_already = victims_against(oracle, data.victims.X, goal, None)
        if len(X0) == 0:  # every victim already decided as wanted: nothing to attack, no queries
            none = np.zeros(0, dtype=bool)
            empty = evasion_result(X0=X0, out=EvasionOutput(X_adv=X0, success=none, valid=none,
                                                            queries=0),
                                   schema=data.schema, scale={}, n_already=n_already,
                                   seconds=meter.seconds, queries=meter.queries, notes=notes)
            return rated(empty, none, np.zeros(0), none, self.baseline_draws)
        out = me.generate(oracle, X0, ref, data.schema, population=data.population.X)
        scale = feature_scales(data.schema, data.population.X, X0)
        res = evasion_result(X0=X0, out=out, schema=data.schema, scale=scale,
                             n_already=n_already, seconds=meter.seconds, queries=meter.queries,
                             notes=notes)
        res.metrics["stolen_records"] = float(me._stolen[0])
        res.metrics["surrogate_agreement_on_stolen"] = me._stolen[1]
        p, any_, cost = self.chance(oracle, X0, out, goal, ref, data.schema, data.population.X)
        return rated(res, out.success & out.valid, p, any_, self.baseline_draws, cost)

    def chance(self, oracle: Oracle, X0: pd.DataFrame, out: EvasionOutput, goal: Any,
               ref: np.ndarray | None, schema: FeatureSchema,
               population: pd.DataFrame | None = None, accept: Any = None,
               ) -> tuple[np.ndarray, np.ndarray, str]:
        """As :meth:`ConstrainedEvasion.chance`: random valid changes of the cost each replayed
        record carries."""
        return tabular_chance_of(self, oracle, X0, out, goal, ref, schema, population, accept)
