"""Evasion ("induce false classification"): the constrained tabular attack (the output and helpers
every evasion attack shares are in :mod:`finmlsec.attacks.evasion_common`).

:class:`ConstrainedEvasion` (``evasion.constrained``) is a black-box, decision-based attack for
tabular models that produces only valid records: it reads the feature schema (immutable and
non-actionable fields stay as they are, integers stay whole, categories stay among the allowed
values, ranges are respected, monotone fields move only in their direction) and minimises the
cost of the change over the actionable fields (``Feature.cost``: per change for a category, per
standard deviation for a number). See :mod:`finmlsec.attacks.evasion_search` for the search.

Example:
    >>> import numpy as np, pandas as pd
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> from finmlsec.schema import Feature, FeatureSchema
    >>> from finmlsec.targets.oracle import Oracle
    >>> schema = FeatureSchema(features=(
    ...     Feature(name="age", type="integer", min=18, max=80, immutable=True),
    ...     Feature(name="income", type="integer", min=0, max=100),
    ... ))
    >>> X = pd.DataFrame({"age": [30, 40, 50, 60] * 5, "income": list(range(0, 100, 5))})
    >>> model = DecisionTreeClassifier(random_state=0).fit(X, (X.income >= 50).astype(int))
    >>> out = ConstrainedEvasion(target_class=1).generate(Oracle(model), X.iloc[:3], schema=schema)
    >>> out.success.tolist(), out.valid.tolist()
    ([True, True, True], [True, True, True])
    >>> out.X_adv.age.tolist() == X.age.iloc[:3].tolist()  # immutable field untouched
    True
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from finmlsec.attacks.base import ATTACKS, Attack, AttackData, Meter, Outcome
from finmlsec.attacks.evasion_chance import DRAWS, rated, tabular_chance_of
from finmlsec.attacks.evasion_common import (
    EvasionOutput,
    check_positive,
    evasion_result,
    feature_scales,
    goal_of,
    resolve_class,
    victims_against,
)
from finmlsec.attacks.evasion_search import search
from finmlsec.datasets.schema_infer import infer_schema
from finmlsec.errors import DataError
from finmlsec.schema import FeatureSchema
from finmlsec.targets.oracle import Oracle


# -- the constrained black-box attack ---------------------------------------------------------------
@ATTACKS.register("evasion.constrained")
class ConstrainedEvasion(Attack):
    """Black-box, decision-based evasion for tabular models that outputs only valid records.

    Parameters: ``target_class`` (the decision the attacker wants, e.g. ``"good"``; None flips
    the current decision), ``max_changes`` (fields changed at most by the greedy search),
    ``n_grid`` (candidate values per numeric field), ``n_anchors`` (approved population records
    used as starting points when scores are not available or the greedy search fails),
    ``refine_steps`` (binary-search steps moving numbers back towards the original),
    ``baseline_draws`` (random valid changes of the same cost per victim for the no-model
    baseline the success is rated against, see :mod:`finmlsec.attacks.evasion_chance`), ``seed``.
    Example: see the module docstring.
    """

    name: ClassVar[str] = "evasion.constrained"
    threat: ClassVar[str] = "induce_false_prediction"
    via: ClassVar[str] = "model_io"
    needs: ClassVar[frozenset[str]] = frozenset({"label", "schema", "victims"})
    atlas: ClassVar[tuple[str, ...]] = ("AML.T0015", "AML.T0043.003")
    owasp: ClassVar[tuple[str, ...]] = ("ML01",)
    summary: ClassVar[str] = (
        "Black-box decision-based evasion producing only schema-valid, minimal-cost changes"
    )
    input_kinds: ClassVar[tuple[str, ...]] = ("tabular",)
    cost_rank: ClassVar[int] = 1
    strength_rank: ClassVar[int] = 1
    generates: ClassVar[bool] = True

    target_class: str | int | None = None
    max_changes: int = 4
    n_grid: int = 8
    n_anchors: int = 24
    refine_steps: int = 6
    baseline_draws: int = DRAWS
    seed: int = 0

    def _validate(self) -> None:
        owner = type(self).__name__
        check_positive(owner, "max_changes", self.max_changes, integer=True, hi=50)
        check_positive(owner, "n_grid", self.n_grid, integer=True, hi=1000)
        check_positive(owner, "n_anchors", self.n_anchors, integer=True, lo=0, closed_lo=True,
                       hi=10_000)
        check_positive(owner, "refine_steps", self.refine_steps, integer=True, lo=0,
                       closed_lo=True, hi=50)
        check_positive(owner, "baseline_draws", self.baseline_draws, integer=True, hi=10_000)

    def generate(
        self, oracle: Oracle, X: Any, y: Any = None, schema: FeatureSchema | None = None,
        *, population: pd.DataFrame | None = None,
    ) -> EvasionOutput:
        """Adversarial versions of the records ``X``. The goal is ``target_class`` if set, else a
        decision different from ``y`` (or from the target's current decision if ``y`` is None).
        Rows already at the goal come back unchanged with ``success`` True."""
        self._validate()
        if not isinstance(X, pd.DataFrame):
            raise DataError(
                f"evasion.constrained works on tabular records (a pandas DataFrame); got "
                f"{type(X).__name__}; use evasion.pgd, evasion.text or evasion.image instead"
            )
        if schema is None:
            schema = infer_schema(X).schema
        schema.check(X, allow_extra=True)  # names the first missing column or invalid value
        oracle.require({"label"}, who=f"attack {self.name!r}")
        goal = resolve_class(self.target_class, oracle.classes_, schema)
        return search(self, oracle, X.reset_index(drop=True), schema, goal,
                      None if y is None else np.asarray(y), population)

    def _attack(self, oracle: Oracle, data: AttackData, meter: Meter) -> Outcome:
        assert data.schema is not None and data.victims is not None
        goal, notes = goal_of(self.target_class, oracle, data.schema)
        X0, ref, n_already = victims_against(oracle, data.victims.X, goal, None)
        pop = data.population.X if data.population is not None else None
        out = self.generate(oracle, X0, None, data.schema, population=pop)
        seconds = meter.seconds
        scale = feature_scales(data.schema, pop, X0)
        res = evasion_result(X0=X0, out=out, schema=data.schema, scale=scale,
                             n_already=n_already, seconds=seconds, queries=meter.queries,
                             notes=notes)
        p, any_, cost = self.chance(oracle, X0, out, goal, ref, data.schema, pop)
        return rated(res, out.success & out.valid, p, any_, self.baseline_draws, cost)

    def chance(self, oracle: Oracle, X0: pd.DataFrame, out: EvasionOutput, goal: Any,
               ref: np.ndarray | None, schema: FeatureSchema,
               population: pd.DataFrame | None = None, accept: Any = None,
               ) -> tuple[np.ndarray, np.ndarray, str]:
        """Per victim, the share of ``baseline_draws`` random valid changes of the cost the
        attack spent on it that turn it, whether any does, and the words for the cost
        (evaluator side: the draws go to the target, not through the oracle); ``accept``: an
        input screen they must pass too. See :mod:`finmlsec.attacks.evasion_chance`."""
        return tabular_chance_of(self, oracle, X0, out, goal, ref, schema, population, accept)
