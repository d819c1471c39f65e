"""Attribute inference (model inversion, Fredrikson et al. 2014/2015) on personal fields, always
against a baseline without model access that has the same side information.

The attacker knows a person's record except one personal field ``s`` and the model's decision
about them (their label ``y``, e.g. whether the loan was repaid). For each candidate value ``v`` of
``s`` (categories; integers value by value; quantile bins of other numbers) it queries the model on
the record completed with ``v`` and measures how well the model's answer explains the known label:
the confidence of ``y`` with probabilities (Fredrikson 2015), the model's confusion statistics
with labels only (Fredrikson 2014). ``rule='likelihood'`` takes the value that explains ``y``
best (strong where the model memorised its training records); ``rule='bayes'`` also weighs
``Pr(v | other fields)`` learnt from the attacker's population (calibrated; never much worse
than the baseline). Both accuracies are reported whatever the rule. The baseline predicts
``s`` from the other fields and ``y`` with a classifier trained on the same population, without
the model. The result reports the lift over that baseline, and says so when there is none.

Example:
    >>> AttributeInference(attribute="age", n_bins=4).n_bins
    4
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from finmlsec.attacks.base import (
    ATTACKS,
    Attack,
    AttackData,
    Labeled,
    Meter,
    Outcome,
)
from finmlsec.attacks.extraction_common import (
    check_choice,
    check_int,
    tabular_schema,
    truth_labels,
)
from finmlsec.errors import CapabilityError, ConfigError
from finmlsec.schema import Feature, FeatureSchema, FeatureType, preprocessor
from finmlsec.targets.oracle import Oracle


def _candidates(f: Feature, pop: pd.DataFrame, n_bins: int, max_values: int
                ) -> tuple[list[Any], np.ndarray, int, Any]:
    """Values of ``f`` to query, the class (category or bin) of each, the number of classes, and
    a function mapping raw values to classes. Integers with at most ``max_values`` values are
    queried value by value (bins of the population's quantiles are what is inferred)."""
    values: list[Any]
    if f.type in (FeatureType.CATEGORICAL, FeatureType.BINARY):
        values = list(f.categories or ()) if f.type == FeatureType.CATEGORICAL else [0, 1]
        lookup = {str(v): i for i, v in enumerate(values)}
        return (values, np.arange(len(values)), len(values),
                lambda col: np.array([lookup.get(str(v), 0) for v in col]))
    num = pd.to_numeric(pop[f.name]).to_numpy(dtype=float)
    num = num[~np.isnan(num)]  # a missing cell is no value to infer (nor a bin's edge)
    edges = np.unique(np.quantile(num, np.linspace(0, 1, n_bins + 1)[1:-1]))

    def index(col: Any) -> np.ndarray:
        return np.searchsorted(edges, pd.to_numeric(pd.Series(col)).to_numpy(dtype=float),
                               side="right")

    k = len(edges) + 1
    lo, hi = f.min, f.max
    if f.type == FeatureType.INTEGER and lo is not None and hi is not None and hi - lo < max_values:
        values = list(range(int(lo), int(hi) + 1))
        return values, index(values), k, index
    idx = index(num)
    values = []
    for b in range(k):
        inside = num[idx == b]
        v = float(np.median(inside)) if len(inside) else float(num.mean())
        values.append(int(round(v)) if f.type == FeatureType.INTEGER else v)
    return values, np.arange(k), k, index


def _side_model(schema: FeatureSchema, target_field: str, with_label: bool, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    others = [f.model_copy(update={"derived": None})  # only how each field is encoded matters
              for f in schema.features  # free text is carried, not encoded
              if f.name != target_field and f.type not in (FeatureType.TEXT, FeatureType.IMAGE)]
    if with_label:  # the known label, one more categorical field (its values seen in fit)
        others.append(Feature(name="__label__", type=FeatureType.CATEGORICAL, categories=("?",)))
    side = FeatureSchema(features=tuple(others))
    prep = preprocessor(side, categories="data")
    return Pipeline([("prep", prep), ("model", LogisticRegression(C=1.0, max_iter=3000))])


@ATTACKS.register("inversion.attribute")
class AttributeInference(Attack):
    """Infer a personal field from the others and the model's output; lift over a no-model
    baseline with the same side information. ``attribute``: the field (empty: every field the
    schema marks personal); ``n_bins``: bins for numeric fields; ``max_victims``: records
    attacked per field (within the query budget). See the module docstring."""

    name: ClassVar[str] = "inversion.attribute"
    threat: ClassVar[str] = "infer_training_data"
    via: ClassVar[str] = "model_io"
    needs: ClassVar[frozenset[str]] = frozenset({"label", "schema", "population"})
    atlas: ClassVar[tuple[str, ...]] = ("AML.T0024.001",)
    owasp: ClassVar[tuple[str, ...]] = ("ML03",)
    summary: ClassVar[str] = (
        "attribute inference (Fredrikson 2014/2015) on personal fields, against a no-model "
        "baseline with the same side information"
    )
    input_kinds: ClassVar[tuple[str, ...]] = ("tabular",)
    cost_rank: ClassVar[int] = 2
    strength_rank: ClassVar[int] = 2

    attribute: str = ""
    rule: str = "likelihood"
    n_bins: int = 4
    max_values: int = 100
    max_victims: int = 200
    seed: int = 0

    def _validate(self) -> None:
        check_int("AttributeInference", "n_bins", self.n_bins, 2, 100)
        check_int("AttributeInference", "max_values", self.max_values, 1)
        check_choice("AttributeInference", "rule", self.rule, ("likelihood", "bayes"))
        check_int("AttributeInference", "max_victims", self.max_victims, 1)
        check_int("AttributeInference", "seed", self.seed, 0)

    def _attack(self, oracle: Oracle, data: AttackData, meter: Meter) -> Outcome:
        schema = tabular_schema(data.schema, f"attack {self.name!r}", data.population)
        fields = [schema[self.attribute]] if self.attribute else schema.personal()
        if not fields:
            raise ConfigError("the schema marks no field personal; give the 'attribute' parameter")
        assert data.population is not None
        pop = data.population.X
        if data.population.y is None:
            raise CapabilityError("attribute inference needs the labels of the population "
                                  "records (the side information the baseline learns from)")
        # training records are what the threat is about; other victims only when none is given
        candidates = {"members": data.members, "nonmembers": data.nonmembers,
                      "victims": data.victims if data.members is None else None}
        groups: dict[str, Labeled] = {
            k: v for k, v in candidates.items() if v is not None and v.y is not None}
        if not groups:
            raise CapabilityError("attribute inference needs victim records with labels "
                                  "(AttackData.members, or victims)")
        rng = np.random.default_rng(self.seed)
        proba = "proba" in oracle.provides
        pop_y = truth_labels(oracle.classes_, np.asarray(data.population.y))
        confusion = None
        if not proba:
            n_c = min(len(pop), 200, max((oracle.remaining or 10**9) // 4, 0))
            ci = rng.choice(len(pop), size=n_c, replace=False)
            confusion = self._confusion(oracle, pop.iloc[ci], pop_y[ci])
        metrics: dict[str, float] = {}
        notes: list[str] = []
        lifts = []
        n_cands = {f.name: len(_candidates(f, pop, self.n_bins, self.max_values)[0])
                   for f in fields}
        per_record = sum(n_cands.values())
        budget_victims = self.max_victims
        if oracle.remaining is not None:
            budget_victims = min(budget_victims, oracle.remaining // max(per_record * len(groups), 1))
        if budget_victims < 1:
            raise ConfigError(f"the query budget ({oracle.remaining} left) cannot cover one victim "
                              f"({per_record * len(groups)} queries); raise the budget")
        for f in fields:
            values, value_class, k, index = _candidates(f, pop, self.n_bins, self.max_values)
            # records whose value of the field is missing have nothing to infer: the side
            # models learn from, and the attack is scored on, records that hold a value
            known = pop[f.name].notna().to_numpy()
            frame = pop[known].copy()
            frame["__label__"] = pop_y[known].astype(str)
            s_pop = index(frame[f.name])
            prior_side = _side_model(schema, f.name, False, self.seed).fit(frame, s_pop)
            baseline = _side_model(schema, f.name, True, self.seed).fit(frame, s_pop)
            prior_mode = int(np.bincount(s_pop, minlength=k).argmax())
            for gname, group in groups.items():
                assert group.y is not None
                held = np.flatnonzero(group.X[f.name].notna().to_numpy())
                pick = np.sort(held[rng.choice(len(held), size=min(budget_victims, len(held)),
                                               replace=False)])
                V = group.X.iloc[pick].reset_index(drop=True)
                yv = truth_labels(oracle.classes_, np.asarray(group.y)[pick])
                truth = index(V[f.name])
                masked = V.drop(columns=[f.name]).assign(__label__=yv.astype(str))
                pb = _aligned(baseline, masked, k)
                pp = _aligned(prior_side, masked, k)
                raw = self._likelihood(oracle, V, f, values, yv, proba, confusion)
                like = np.stack([raw[:, value_class == c].max(axis=1) if (value_class == c).any()
                                 else np.zeros(len(V)) for c in range(k)], axis=1)
                # likelihood: the value under which the model best explains the known label
                # (Fredrikson; strong where the model memorised its training records);
                # bayes: that likelihood times Pr(value | other fields) (calibrated)
                by_like = np.argmax(np.log(like + 1e-12) + 1e-6 * np.log(pp + 1e-12), axis=1)
                by_bayes = np.argmax(np.log(pp + 1e-12) + np.log(like + 1e-12), axis=1)
                attack = by_like if self.rule == "likelihood" else by_bayes
                acc_a = float(np.mean(attack == truth))
                acc_b = float(np.mean(np.argmax(pb, axis=1) == truth))
                acc_p = float(np.mean(truth == prior_mode))
                lift = acc_a - acc_b
                se = math.sqrt(max(acc_a * (1 - acc_a) + acc_b * (1 - acc_b), 1e-9) / len(V))
                key = f"{f.name}.{gname}"
                metrics.update({f"{key}.accuracy": acc_a, f"{key}.baseline_accuracy": acc_b,
                                f"{key}.prior_accuracy": acc_p, f"{key}.lift": lift,
                                f"{key}.accuracy_likelihood": float(np.mean(by_like == truth)),
                                f"{key}.accuracy_bayes": float(np.mean(by_bayes == truth)),
                                f"{key}.victims": float(len(V))})
                if gname != "nonmembers":
                    lifts.append(lift)
                verdict = ("lift beyond the no-model baseline" if lift > 2 * se else
                           "not inferable beyond the no-model baseline")
                notes.append(f"{f.name} ({gname}): {verdict} (attack {acc_a:.3f}, baseline "
                             f"{acc_b:.3f}, prior {acc_p:.3f}, n={len(V)})")
        best = max(lifts) if lifts else 0.0
        metrics["max_lift"] = best
        return Outcome(success=float(max(0.0, best)), metrics=metrics, notes=tuple(notes))

    @staticmethod
    def _confusion(oracle: Oracle, X: pd.DataFrame, y: np.ndarray) -> dict[Any, dict[Any, float]]:
        """Pr(answer = a | true label = t), smoothed, from the attacker's population."""
        pred = oracle.predict(X)
        classes = list(oracle.classes_)
        conf: dict[Any, dict[Any, float]] = {}
        for t in classes:
            sel = y == t
            counts = np.array([np.sum(pred[sel] == a) for a in classes], dtype=float) + 1.0
            conf[t] = dict(zip(classes, counts / counts.sum(), strict=True))
        return conf

    @staticmethod
    def _likelihood(oracle: Oracle, V: pd.DataFrame, f: Feature, values: list[Any],
                    yv: np.ndarray, proba: bool, confusion: Any) -> np.ndarray:
        k = len(values)
        rep = V.loc[V.index.repeat(k)].reset_index(drop=True)
        rep[f.name] = values * len(V)
        if f.type in (FeatureType.INTEGER, FeatureType.BINARY):
            rep[f.name] = rep[f.name].astype(int)
        classes = list(oracle.classes_)
        yr = np.repeat(yv, k)
        if proba:
            P = oracle.predict_proba(rep)
            col = np.array([classes.index(t) for t in yr])
            like = P[np.arange(len(yr)), col]
        else:
            pred = oracle.predict(rep)
            like = np.array([confusion[t][a] for t, a in zip(yr, pred, strict=True)])
        return like.reshape(len(V), k)


def _aligned(model: Any, X: pd.DataFrame, k: int) -> np.ndarray:
    """Class probabilities over all ``k`` candidates (classes unseen in training get 0)."""
    P = np.zeros((len(X), k))
    P[:, np.asarray(model.classes_, dtype=int)] = model.predict_proba(X)
    return P
