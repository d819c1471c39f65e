"""Learning-based extraction with adaptive query selection, for any model (Tramer et al. 2016's
adaptive retraining; active learning as in Chandrasekaran et al. 2020).

The attacker queries valid records (:func:`~finmlsec.attacks.extraction_common.sample_records`:
the schema's ranges, and the marginals and rows of its public records when it has some), trains
a surrogate on the answers, then in each round draws a large pool of candidate records and
queries those on which the surrogate is least certain (smallest margin between its two top
classes), retraining after each round. Labels are enough; with probabilities the surrogate learns
from them (each record weighted by the target's confidence per class). The surrogate is the
attacker's guess of the training algorithm (``data.model_factory``) when known, else the better of
a logistic regression and gradient boosting by cross-validation on the answers.

Example:
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from finmlsec.attacks.base import AttackData
    >>> from finmlsec.schema import Feature, FeatureSchema
    >>> from finmlsec.targets.oracle import Oracle
    >>> schema = FeatureSchema(features=(Feature(name="a", type="numeric", min=-1, max=1),
    ...                                  Feature(name="b", type="numeric", min=-1, max=1)))
    >>> X = schema.sample_uniform(300, 0); y = (X.a + 0.5 * X.b > 0.1).astype(int).to_numpy()
    >>> oracle = Oracle(LogisticRegression(C=100).fit(X, y), access="label", budget=200)
    >>> r = LearningExtraction(budget=200, rounds=4, n_uniform=1000).run(oracle, AttackData(schema=schema))
    >>> r.queries <= 200, r.metrics["fidelity_uniform"] > 0.97
    (True, True)
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from finmlsec.attacks.base import ATTACKS, INPUT_KINDS, Attack, AttackData, Meter, Outcome
from finmlsec.attacks.extraction_common import (
    SOURCES,
    check_choice,
    check_int,
    sample_records,
    tabular_schema,
    theft_metrics,
    theft_success,
)
from finmlsec.schema import FeatureSchema, preprocessor
from finmlsec.targets.cutoff import without_cutoff
from finmlsec.targets.oracle import Oracle


def default_surrogate(schema: FeatureSchema, kind: str, seed: int) -> Any:
    """A surrogate for raw records: one-hot encoding and scaling, then ``kind``."""
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    prep = preprocessor(schema)
    est: Any
    if kind == "logistic":
        est = LogisticRegression(C=100.0, max_iter=5000)
    else:
        est = GradientBoostingClassifier(n_estimators=200, max_depth=3, random_state=seed)
    return Pipeline([("prep", prep), ("model", est)])


def _fit(model: Any, X: pd.DataFrame, y: np.ndarray, w: np.ndarray | None) -> Any:
    if w is None:
        return model.fit(X, y)
    steps = getattr(model, "steps", None)
    key = f"{steps[-1][0]}__sample_weight" if steps else "sample_weight"
    return model.fit(X, y, **{key: w})


@ATTACKS.register("extraction.learning")
class LearningExtraction(Attack):
    """Query, train a surrogate, query where it is least certain, retrain; within ``budget``.

    ``initial``: share of the budget spent on the first, random queries; ``rounds``: adaptive
    rounds for the rest; ``pool``: candidates drawn per round; ``committee``: if > 1, select by
    the disagreement of that many bootstrap surrogates instead of one surrogate's margin; ``source``: where query records
    come from (``mixed``, ``uniform``, ``marginal``); ``surrogate``: ``auto``, ``factory``,
    ``logistic`` or ``boosting``; ``use_proba``: learn from probabilities when the oracle gives
    them. See the module docstring for an example.
    """

    name: ClassVar[str] = "extraction.learning"
    threat: ClassVar[str] = "infer_model"
    via: ClassVar[str] = "model_io"
    needs: ClassVar[frozenset[str]] = frozenset({"label", "schema"})
    atlas: ClassVar[tuple[str, ...]] = ("AML.T0024.002", "AML.T0005.001")
    owasp: ClassVar[tuple[str, ...]] = ("ML05",)
    summary: ClassVar[str] = (
        "adaptive retraining (Tramer 2016): surrogate trained on queries chosen where it is "
        "least certain; labels suffice"
    )
    input_kinds: ClassVar[tuple[str, ...]] = INPUT_KINDS
    cost_rank: ClassVar[int] = 3
    strength_rank: ClassVar[int] = 2

    budget: int = 1000
    initial: float = 0.3
    rounds: int = 10
    pool: int = 5000
    explore: float = 0.2
    committee: int = 0
    source: str = "mixed"
    surrogate: str = "auto"
    use_proba: bool = True
    n_uniform: int = 2000
    seed: int = 0

    def fits(self, defences: tuple[Any, ...] = ()) -> float:
        """With the training algorithm as surrogate (``auto`` takes it when known): one surrogate
        a round and the first (``committee`` of them where it selects by committee); and the
        copy trained without queries on the attacker's public records (a baseline)."""
        if self.surrogate not in ("auto", "factory"):
            return 1.0
        return 1.0 + (self.rounds + 1) * max(1, self.committee)

    def _validate(self) -> None:
        check_int("LearningExtraction", "budget", self.budget, 2)
        check_int("LearningExtraction", "rounds", self.rounds, 0, 1000)
        check_int("LearningExtraction", "pool", self.pool, 10)
        check_int("LearningExtraction", "committee", self.committee, 0, 100)
        check_int("LearningExtraction", "n_uniform", self.n_uniform, 0)
        check_int("LearningExtraction", "seed", self.seed, 0)
        check_choice("LearningExtraction", "source", self.source, SOURCES)
        check_choice("LearningExtraction", "surrogate", self.surrogate,
                     ("auto", "factory", "logistic", "boosting"))
        if not isinstance(self.explore, int | float) or not 0 <= self.explore <= 1:
            from finmlsec.errors import ConfigError

            raise ConfigError(f"The 'explore' parameter of LearningExtraction must be a float in "
                              f"[0, 1]. Got {self.explore!r} instead.")
        if not isinstance(self.initial, int | float) or not 0 < self.initial <= 1:
            from finmlsec.errors import ConfigError

            raise ConfigError(f"The 'initial' parameter of LearningExtraction must be a float in "
                              f"(0, 1]. Got {self.initial!r} instead.")

    def required(self) -> frozenset[str]:
        return self.needs | ({"model_factory"} if self.surrogate == "factory" else set())

    def _attack(self, oracle: Oracle, data: AttackData, meter: Meter) -> Outcome:
        schema = tabular_schema(data.schema, f"attack {self.name!r}", data.population)
        pop = data.population.X if data.population is not None else None
        rng = np.random.default_rng(self.seed)
        total = self.budget if oracle.remaining is None else min(self.budget, oracle.remaining)
        notes: list[str] = []
        if total < self.budget:
            notes.append(f"oracle budget allows {total} of the {self.budget} queries planned")
        proba = self.use_proba and "proba" in oracle.provides
        classes = np.asarray(oracle.classes_)
        self.__dict__["_decide"] = oracle.decide
        n0 = max(2, int(round(total * self.initial))) if total >= 2 else total
        sizes = [n0] + _split(total - n0, self.rounds)
        Xq = pd.DataFrame(columns=schema.names)
        answers: list[np.ndarray] = []
        model: Any = None
        kind = self.surrogate
        curve: dict[str, list[float]] = {"queries": [], "fidelity": []}
        for step, size in enumerate(sizes):
            if size <= 0:
                continue
            if model is None:
                batch = sample_records(schema, size, rng, pop, self.source)
            else:
                cand = sample_records(schema, self.pool, rng, pop, self.source)
                if self.committee > 1:
                    batch = self._disagreement(schema, data, kind, Xq, np.concatenate(answers),
                                               proba, classes, cand, size, rng)
                else:
                    batch = self._uncertain(model, cand, size, rng, self.explore)
            ans = oracle.predict_proba(batch) if proba else oracle.predict(batch)
            Xq = batch if len(Xq) == 0 else pd.concat([Xq, batch], ignore_index=True)
            answers.append(np.asarray(ans))
            A = np.concatenate(answers)
            if step == 0 and kind == "auto":
                kind = self._choose(schema, data, Xq, A, proba, classes)
                notes.append(f"surrogate: {kind}")
            model = self._train(schema, data, kind, Xq, A, proba, classes)
            if model is not None and data.test is not None and len(data.test) > 0:
                f = float(np.mean(np.asarray(model.predict(data.test.X))
                                  == np.asarray(oracle.target.predict(data.test.X))))
                curve["queries"].append(float(meter.queries))
                curve["fidelity"].append(f)
        queries = meter.queries
        stolen = model if model is not None else _Constant(classes, np.concatenate(answers), proba)
        m = theft_metrics(stolen, oracle.target, schema, data.test, public=data.population,
                          factory=data.model_factory, n_uniform=self.n_uniform,
                          seed=self.seed, population=pop, copies_scores=proba)
        m["queries"] = float(queries)
        success, why = theft_success(m)
        return Outcome(
            success=float(success), metrics=m,
            curves={"fidelity_vs_queries": curve} if curve["queries"] else {},
            notes=tuple(notes + [f"{'probabilities' if proba else 'labels only'}"]
                        + ([why] if why else [])),
        )

    # -- internals ------------------------------------------------------------------------------
    def _labels(self, A: np.ndarray, proba: bool, classes: np.ndarray) -> np.ndarray:
        """The decisions behind the answers ``A``: the labels, or the decisions the model takes
        on its probabilities (at the bank's cut-off where it has one: on 95/5 data the most
        probable class is nearly always the majority, and the copy would stay constant)."""
        if not proba:
            return A
        decide = self.__dict__.get("_decide")
        return decide(A) if decide is not None else classes[np.argmax(A, axis=1)]

    def _train(self, schema: FeatureSchema, data: AttackData, kind: str, X: pd.DataFrame,
               A: np.ndarray, proba: bool, classes: np.ndarray) -> Any:
        y = self._labels(A, proba, classes)
        if len(np.unique(y)) < 2:
            return _Constant(classes, A, proba)
        # the attacker's copy learns the answers: it takes no cut-off of the bank's (a copy of
        # scores decides at it when measured, see theft_metrics)
        make = without_cutoff(data.model_factory) if kind == "factory" and data.model_factory \
            else None
        model = make() if make else default_surrogate(schema, kind, self.seed)
        if not proba:
            return model.fit(X, y)
        # soft labels: every record once per class, weighted by the target's confidence
        k = len(classes)
        Xs = pd.concat([X] * k, ignore_index=True)
        ys = np.repeat(classes, len(X))
        w = A.T.reshape(-1) + 1e-6
        try:
            return _fit(model, Xs, ys, w)
        except TypeError:
            return model.fit(X, y)

    def _choose(self, schema: FeatureSchema, data: AttackData, X: pd.DataFrame, A: np.ndarray,
                proba: bool, classes: np.ndarray) -> str:
        if data.model_factory is not None:
            return "factory"
        from sklearn.model_selection import cross_val_score

        y = self._labels(A, proba, classes)
        if min(np.unique(y, return_counts=True)[1]) < 3:
            return "logistic"
        scores = {}
        for kind in ("logistic", "boosting"):
            cv = min(5, int(min(np.unique(y, return_counts=True)[1])))
            scores[kind] = float(np.mean(cross_val_score(
                default_surrogate(schema, kind, self.seed), X, y, cv=cv)))
        return max(scores, key=lambda k: scores[k])

    def _disagreement(self, schema: FeatureSchema, data: AttackData, kind: str, X: pd.DataFrame,
                      A: np.ndarray, proba: bool, classes: np.ndarray, cand: pd.DataFrame,
                      size: int, rng: np.random.Generator) -> pd.DataFrame:
        """Query by committee: surrogates trained on bootstrap samples of the answers vote on
        the candidates; the most divided votes are queried (plus the ``explore`` share)."""
        votes = []
        for _ in range(self.committee):
            idx = rng.integers(0, len(X), size=len(X))
            member = self._train(schema, data, kind, X.iloc[idx].reset_index(drop=True), A[idx],
                                 proba, classes)
            votes.append(np.asarray(member.predict(cand)))
        V = np.stack(votes)
        share = np.stack([np.equal(V, c).mean(axis=0) for c in classes], axis=1)
        entropy = -(share * np.log(np.clip(share, 1e-12, 1))).sum(axis=1)
        n_rand = int(round(size * self.explore))
        order = np.argsort(-entropy + rng.random(len(entropy)) * 1e-6)
        pick = np.concatenate([order[: size - n_rand],
                               rng.choice(order[size - n_rand:], size=n_rand, replace=False)])
        return cand.iloc[np.sort(pick)].reset_index(drop=True)

    def _uncertain(self, model: Any, cand: pd.DataFrame, size: int,
                   rng: np.random.Generator, explore: float) -> pd.DataFrame:
        P = np.asarray(model.predict_proba(cand))
        top = np.sort(P, axis=1)
        margin = top[:, -1] - (top[:, -2] if P.shape[1] > 1 else 0.0)
        n_rand = int(round(size * explore))
        # the most uncertain (random among near-ties), plus a share drawn at random
        order = np.argsort(margin + rng.random(len(margin)) * 1e-6)
        sure = order[: size - n_rand]
        rest = order[size - n_rand:]
        pick = np.concatenate([sure, rng.choice(rest, size=min(n_rand, len(rest)), replace=False)])
        return cand.iloc[np.sort(pick)].reset_index(drop=True)


def _split(n: int, parts: int) -> list[int]:
    if parts <= 0:
        return [n] if n > 0 else []
    base = [n // parts] * parts
    for i in range(n % parts):
        base[i] += 1
    return base


class _Constant:
    """The majority answer, while the answers hold a single class."""

    def __init__(self, classes: np.ndarray, A: np.ndarray, proba: bool) -> None:
        self.classes_ = classes
        if proba:
            self.p = np.asarray(A).mean(axis=0)
        else:
            self.p = np.array([np.mean(np.equal(A, c)) for c in classes], dtype=float)

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.tile(self.p, (len(X), 1))

    def predict(self, X: Any) -> np.ndarray:
        return np.full(len(X), self.classes_[int(np.argmax(self.p))])
