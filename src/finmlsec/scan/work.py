"""Running one unit of work, in whatever process an executor chose.

:func:`execute_unit` is the only function executors call; it takes two frozen values (the scan's
:class:`ScanContext` and the :class:`~finmlsec.scan.plan.Unit`), loads the scenario once per
process, builds the defended model where the unit asks for defences, runs the attack through an
:class:`~finmlsec.targets.oracle.Oracle` and returns a JSON-able outcome. It never raises: an
attack that cannot run here is ``skipped`` with the reason, any other error makes the unit
``error`` (the attack or a defence raised: reported, not retried); only a unit whose worker was
lost is ``failed``, and a resumed scan runs it again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from threadpoolctl import threadpool_limits

from finmlsec.errors import (
    BudgetExceededError,
    CapabilityError,
    ConfigError,
    DataError,
    FinmlsecError,
)
from finmlsec.scan.plan import FIT_MARGIN, REFERENCE_CELLS, Unit
from finmlsec.tasks import recording

# A column mostly missing (schema infer flags it) is wholly missing in some of the small samples
# the attacks retrain on; the user's own imputer then drops it, as it would in their training,
# and says so once per model: hundreds of lines in a scan's output, none of them a finding.
warnings.filterwarnings("ignore", message="Skipping features without any observed values",
                        category=UserWarning)

#: Errors that mean "this attack or defence does not apply to this system": the unit is skipped.
NOT_APPLICABLE = (CapabilityError, ConfigError, DataError, BudgetExceededError)


class ScanContext(BaseModel):
    """What every worker needs to rebuild the scanned system: the spec and how to load it.

    ``bundle``: the SHA-256 of the scan's bundle (:mod:`finmlsec.scan.bundle`: the spec and its
    files, shipped with the work); a worker then loads the scenario from the bundle's bytes,
    which the executor hands to :func:`execute_unit`, not from ``spec_path``.
    """

    model_config = ConfigDict(frozen=True)

    spec_path: str
    trust_pickle: bool = False
    endpoint: str | None = None
    bundle: str | None = None


_SCENARIOS: dict[tuple[str, bool], Any] = {}
_BUNDLES: dict[str, bytes] = {}


def keep_bundle(payload: bytes) -> str:
    """Make the scan bundle ``payload`` available to :func:`scenario_for` in this process;
    return its digest."""
    from finmlsec.scan.bundle import digest

    key = digest(payload)
    _BUNDLES[key] = payload
    return key


def release() -> None:
    """Drop every scenario and bundle this process keeps, and their unpacked files: between the
    systems of a portfolio, so a long inventory does not hold each system's data and model."""
    from finmlsec.scan.bundle import forget

    _SCENARIOS.clear()
    _BUNDLES.clear()
    forget()


def scenario_for(ctx: ScanContext, scenario: Any = None) -> Any:
    """The scenario of ``ctx``, loaded once per process: from its bundle when it names one (the
    bundle must have been kept with :func:`keep_bundle`), else from its spec path. ``scenario``:
    one the caller loaded from the same inputs, kept for ``ctx`` instead of loading it again."""
    key = (ctx.bundle or ctx.spec_path, ctx.trust_pickle)
    if scenario is not None:
        _SCENARIOS[key] = scenario
    if key not in _SCENARIOS:
        from finmlsec.scenario import load_scenario

        source: Any = ctx.spec_path
        if ctx.bundle is not None:
            from finmlsec.scan.bundle import open_bundle

            if ctx.bundle not in _BUNDLES:
                raise RuntimeError(f"scan bundle {ctx.bundle[:12]} was not shipped to this "
                                   "process")
            source = open_bundle(_BUNDLES[ctx.bundle])
        _SCENARIOS[key] = load_scenario(source, trust_pickle=ctx.trust_pickle)
    return _SCENARIOS[key]


class Deployed(ClassifierMixin, BaseEstimator):
    """A loaded target that is not a scikit-learn estimator (a torch or ONNX model), as a fitted
    one, so that an output defence can wrap the deployed model itself (``prefit=True``).

    Example:
        >>> from sklearn.linear_model import LogisticRegression
        >>> from finmlsec.targets.base import SklearnTarget
        >>> t = SklearnTarget(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), input_kind="image")
        >>> Deployed(target=t).fit(None).predict([[1.0]]).tolist()
        [1]
    """

    def __init__(self, target: Any = None) -> None:
        self.target = target

    def __sklearn_is_fitted__(self) -> bool:
        return True

    @property
    def classes_(self) -> np.ndarray:
        return np.asarray(self.target.classes_)

    def fit(self, X: Any, y: Any = None) -> Deployed:
        return self

    def predict(self, X: Any) -> Any:
        return self.target.predict(X)

    def predict_proba(self, X: Any) -> Any:
        return self.target.predict_proba(X)


# budget parameters an evasion attack shares with the attack adversarial training trains on
BUDGET_KEYS = ("eps", "clip_min", "clip_max", "target_class", "max_changes", "max_words",
               "operations")


def training_budget(defence: type, attack: Any, input_kind: str) -> dict[str, Any]:
    """The budget of the measured evasion ``attack`` (radius, clipping box, goal, fields or words
    changed), restricted to the parameters of the attack the ``defence`` class trains against for
    this kind of input (its ``training_attacks``): a defence that trains against attacks is
    configured for the threat it is measured against (adversarial training at the same budget),
    not for its own defaults."""
    from finmlsec.attacks.base import ATTACKS, params_of

    trainer = getattr(defence, "training_attacks", {}).get(input_kind)
    if attack is None or trainer is None or not str(getattr(attack, "name", "")).startswith(
            "evasion."):
        return {}
    fields = getattr(ATTACKS.get(trainer), "__dataclass_fields__", {})
    mine = params_of(attack)
    return {k: mine[k] for k in BUDGET_KEYS if k in fields and mine.get(k) is not None}


def declared_rules(scenario: Any) -> dict[str, float | str] | None:
    """How the spec says its personal numbers are to be generalised (``stakes.personal_fields``,
    the rounding the analysis recommends: ``round_to`` a step, or ``band`` a width), over the
    default rounding of the schema's personal numeric fields
    (:func:`~finmlsec.defences.generalise.default_step` of their range) and the default bands of
    its numeric ``quasi_identifier`` fields (:func:`~finmlsec.defences.generalise.band_rule`: a
    transaction's hour in four bands); a declared field without ``round_to`` or ``band`` gets its
    default too. None when the spec declares none: the defence's own defaults hold (the same
    defaults).

    Example:
        >>> from types import SimpleNamespace
        >>> from finmlsec.datasets import load
        >>> from finmlsec.spec.models import PersonalField
        >>> stakes = SimpleNamespace(personal_fields=(PersonalField(field="age", round_to=5),))
        >>> sc = SimpleNamespace(spec=SimpleNamespace(stakes=stakes),
        ...                      schema=load("german_credit").schema, train=None)
        >>> declared_rules(sc)
        {'credit_amount': 1000.0, 'age': 5.0}
    """
    from finmlsec.defences.generalise import band_rule, default_step

    stakes = getattr(getattr(scenario, "spec", None), "stakes", None)
    fields = tuple(getattr(stakes, "personal_fields", ()) or ())
    schema = getattr(scenario, "schema", None)
    if not fields or schema is None:
        return None
    X = getattr(getattr(scenario, "train", None), "X", None)
    names = {p.field for p in fields}
    rules: dict[str, float | str] = {}
    for f in schema.features:
        band = band_rule(f, X)
        if band is not None:
            rules[f.name] = band
            continue
        if not (f.personal or f.name in names) or not f.is_numeric or f.type.value == "binary":
            continue
        lo, hi = f.min, f.max
        if (lo is None or hi is None) and X is not None and f.name in getattr(X, "columns", ()):
            col = X[f.name].astype(float)
            lo = float(col.min()) if lo is None else lo
            hi = float(col.max()) if hi is None else hi
        if lo is not None and hi is not None:
            rules[f.name] = default_step(float(lo), float(hi))
    for p in fields:
        if p.round_to is not None and p.field in schema.names:
            rules[p.field] = float(p.round_to)
        elif getattr(p, "band", None) is not None and p.field in schema.names:
            rules[p.field] = f"band:{p.band:g}"
    return rules or None


def make_defence(name: str, seed: int, schema: Any = None, input_kind: str = "tabular",
                 attack: Any = None, estimator: Any = None,
                 rules: dict[str, float | str] | None = None) -> Any:
    """An instance of the registered defence ``name`` around ``estimator``, with its defaults,
    the parameters it asks for on inputs of ``input_kind`` (its ``input_params``), ``seed`` and,
    where it takes them, the scenario's feature ``schema``, whether inputs are
    ``text``, the generalisation ``rules`` the spec declares (:func:`declared_rules`) and, for
    a defence that trains against an attack (``training_attacks``), the measured ``attack``'s
    budget (:func:`training_budget`)."""
    import inspect

    from finmlsec.defences import DEFENCES

    cls = DEFENCES.get(name)
    params = inspect.signature(cls).parameters
    kwargs: dict[str, Any] = {"estimator": estimator}
    for seed_name in ("random_state", "seed"):
        if seed_name in params:
            kwargs[seed_name] = seed
    if "schema" in params and schema is not None:
        kwargs["schema"] = schema
    if "text" in params and input_kind == "text":
        kwargs["text"] = True
    # what the defence asks for on this kind of input (PATE: its queries and budget)
    kwargs.update({k: v for k, v in getattr(cls, "input_params", {}).get(input_kind, {}).items()
                   if k in params})
    if "rules" in params and rules:
        kwargs["rules"] = dict(rules)
    budget = training_budget(cls, attack, input_kind)
    if budget and "attack_params" in params:
        kwargs["attack_params"] = budget
    return cls(**kwargs)


class Served(ClassifierMixin, BaseEstimator):
    """An unfitted estimator whose ``fit`` trains a clone of ``estimator`` and puts it behind the
    serving guard ``guard`` (:meth:`~finmlsec.defences.Guard.wrap`): how a guard measured by the
    scan stands in front of the model, also of every model an attack retrains.

    Example:
        >>> from sklearn.linear_model import LogisticRegression
        >>> from finmlsec.defences.ratelimit import QueryBudget
        >>> m = Served(LogisticRegression(), QueryBudget(per_minute=None, lifetime=2))
        >>> m.fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1]).predict([[3.0]]).tolist()
        [1]
        >>> m.predict([[0.0], [1.0]])
        Traceback (most recent call last):
        ...
        finmlsec.errors.BudgetExceededError: query budget exhausted: 2 more record(s) would exceed the lifetime limit of 2; wait or ask the operator for a larger budget
    """

    def __init__(self, estimator: Any = None, guard: Any = None) -> None:
        self.estimator = estimator
        self.guard = guard

    def fit(self, X: Any, y: Any) -> Served:
        self.model_ = self.guard.wrap(clone(self.estimator).fit(X, y), X)
        self.classes_ = np.asarray(self.model_.classes_)
        return self

    def predict(self, X: Any) -> Any:
        return self.model_.predict(X)

    def predict_proba(self, X: Any) -> Any:
        return self.model_.predict_proba(X)


def build_defended(scenario: Any, defences: tuple[str, ...], seed: int,
                   attack: Any = None) -> Any:
    """Train the scenario's model with ``defences`` (defences and scanned guards, innermost
    first) on its training split; ``attack``: the attack the defended model will be measured
    with (see :func:`make_defence`)."""
    from finmlsec.defences import DEFENCES

    if scenario.train is None:
        raise CapabilityError(
            "the scenario gives no training split, so no countermeasure can be fitted; add "
            "data splits to the spec (data.splits)")
    kind = getattr(scenario.target, "input_kind", "tabular")
    deployed = getattr(scenario.target, "estimator", None) or Deployed(target=scenario.target)
    if len(defences) == 1 and defences[0] in DEFENCES:
        only = make_defence(defences[0], seed, scenario.schema, kind, attack,
                            rules=declared_rules(scenario))
        if type(only).stage == "output" and "prefit" in only.get_params():
            # an output defence wraps the deployed model itself, whatever it is (an ONNX or
            # torch model too): before and after differ only in it
            return only.set_params(estimator=deployed, prefit=True).fit(
                scenario.train.X, scenario.train.y)
    if scenario.model_factory is None:
        raise CapabilityError(
            f"{' + '.join(defences)} retrains the model and the spec gives no model factory "
            "for this model: give an unfitted model trained like the deployed one in "
            "model.factory (see docs/spec.md)")
    return defended_factory(scenario, defences, seed, attack)().fit(
        scenario.train.X, scenario.train.y)


def defended_factory(scenario: Any, defences: tuple[str, ...], seed: int,
                     attack: Any = None) -> Any:
    """A model factory whose models train through ``defences`` (innermost first): each defence
    is the next one's ``estimator``; a serving guard (:data:`~finmlsec.defences.GUARDS`) serves
    what is inside it (:class:`Served`)."""
    from finmlsec.defences import GUARDS

    base = scenario.model_factory
    kind = getattr(scenario.target, "input_kind", "tabular")
    rules = declared_rules(scenario)

    cutoff = getattr(base, "cutoff", None)  # the bank's cut-off in the factory's class order

    def factory() -> Any:
        est: Any = base()
        for d in defences:
            est = (Served(est, GUARDS.get(d)()) if d in GUARDS else
                   make_defence(d, seed, scenario.schema, kind, attack, estimator=est,
                                rules=rules))
            if cutoff is not None and getattr(type(est), "stage", None) == "training":
                # a model trained another way (PATE's student, a bagged vote, DP) stands for
                # the deployed one: the bank decides on its score at the same cut-off
                est = thresholded(est, cutoff)
        return est

    return factory


def thresholded(est: Any, cutoff: Any) -> Any:
    """``est`` deciding at the bank's ``cutoff`` (:class:`~finmlsec.targets.cutoff.Thresholded`;
    its class order is the scan's label indices)."""
    from finmlsec.targets.cutoff import Thresholded

    return Thresholded(est, cutoff.threshold, cutoff.index)


def through_screen(attack: Any, oracle: Any, data: Any, screen: Any) -> Any:
    """An evasion attack against a model behind an input screen (a fitted
    :class:`~finmlsec.defences.InputScreening` defence): the attacker searches against the
    model, and succeeds only with the adversarial inputs that reach its goal, are valid *and*
    pass the screen."""
    import inspect

    from finmlsec.attacks.base import AttackResult, Outcome, params_of
    from finmlsec.attacks.evasion_chance import rated
    from finmlsec.attacks.evasion_common import goal_of

    t0 = time.perf_counter()
    q0 = oracle.queries_used
    X = data.victims.X
    # the victims and the goal of the attack as it runs undefended: the applicants the model
    # decides against, moved to the favourable outcome only (records already there are no
    # victims, and a move away from it is no success for the applicant)
    goal, notes = goal_of(getattr(attack, "target_class", None), oracle, data.schema)
    if goal is not None and getattr(attack, "target_class", None) is None \
            and dataclasses.is_dataclass(attack) and not isinstance(attack, type) \
            and "target_class" in {f.name for f in dataclasses.fields(attack)}:
        attack = dataclasses.replace(attack, target_class=goal)
    keep = np.ones(len(X), dtype=bool)
    if goal is not None:
        keep = np.asarray(oracle.predict(X)) != goal
    idx = np.flatnonzero(keep)
    X = X.iloc[idx].reset_index(drop=True) if hasattr(X, "iloc") else (
        [X[i] for i in idx] if isinstance(X, list) else np.asarray(X)[idx])
    extra = {}
    if data.population is not None and "population" in inspect.signature(
            attack.generate).parameters:
        extra["population"] = data.population.X
    metrics = {"n_victims": float(len(idx)), "n_already_at_goal": float((~keep).sum())}
    won = np.zeros(0, dtype=bool)
    if len(idx):
        gen = attack.generate(oracle, X, None, data.schema, **extra)
        raw = np.asarray(gen.success, dtype=bool) & np.asarray(gen.valid, dtype=bool)
        accepted = np.asarray(screen.decide(gen.X_adv).accept, dtype=bool)
        won = raw & accepted
        metrics.update({
            "success_rate": float(won.mean()),
            "success_rate_unscreened": float(raw.mean()),
            "screened_out": float((raw & ~accepted).sum() / max(raw.sum(), 1)),
        })
    else:
        metrics.update({"success_rate": 0.0, "success_rate_unscreened": 0.0,
                        "screened_out": 0.0})
    queries, seconds = int(oracle.queries_used - q0), time.perf_counter() - t0
    outcome = Outcome(metrics["success_rate"], metrics, notes=(
        "success counts only adversarial inputs that pass the input screen",) + notes)
    if callable(getattr(attack, "chance", None)):
        # rated as undefended, on the lift over random changes of the same cost that also pass
        # the screen (evaluator side: not charged, not timed)
        if len(idx):
            ref = np.asarray(oracle.target.predict(X)) if goal is None else None
            gen_won = type(gen)(X_adv=gen.X_adv, success=won, valid=np.ones(len(won), bool),
                                queries=gen.queries)
            p, any_, cost = attack.chance(oracle, X, gen_won, goal, ref, data.schema,
                                          extra.get("population"),
                                          lambda Z: screen.decide(Z).accept)
        else:
            p, any_, cost = np.zeros(0), np.zeros(0, dtype=bool), "of the same cost"
        outcome = rated(outcome, won, p, any_, attack.baseline_draws, cost)
    return AttackResult(
        attack=getattr(attack, "name", type(attack).__name__), threat=attack.threat,
        via=attack.via, success=outcome.success, metrics=outcome.metrics, queries=queries,
        seconds=seconds, params=params_of(attack), notes=outcome.notes,
    )


#: The utility figures :func:`utility` measures (``stakes.utility_metric`` names one of them).
UTILITY_METRICS = ("accuracy", "balanced_accuracy", "roc_auc", "average_precision", "f1",
                   "precision", "recall")


def _indices(pred: Any, classes: Any) -> np.ndarray:
    """Predicted labels as class indices (the encoding of a scenario's ``y``)."""
    pred = np.asarray(pred)
    if pred.dtype.kind in "USO" and classes is not None:
        lookup = {c: i for i, c in enumerate(np.asarray(classes).tolist())}
        pred = np.array([lookup.get(p, -1) for p in pred.tolist()])
    return pred


def _scores(model: Any, X: Any, pred: np.ndarray, positive: int) -> np.ndarray:
    """The positive class's score of each record: its probability, or, for a model that answers
    with labels only, 1 for a positive decision and 0 otherwise (how such a model ranks)."""
    if hasattr(model, "predict_proba"):
        try:
            proba = np.asarray(model.predict_proba(X), dtype=float)
            if proba.ndim == 2 and proba.shape[1] > positive:
                return proba[:, positive]
        except (ValueError, IndexError, AttributeError, NotImplementedError, FinmlsecError):
            pass
    return (pred == positive).astype(float)


def utility(model: Any, test: Any, positive: int = 1) -> dict[str, float]:
    """The utility of ``model`` (a target or estimator) on ``test`` (labels as class indices):
    ``accuracy`` and ``balanced_accuracy``; for two classes also ``roc_auc`` and
    ``average_precision`` of the positive class's score (class index ``positive``) and ``f1``,
    ``precision``, ``recall`` of its decisions (see :data:`UTILITY_METRICS`), and
    ``classes_decided``, how many classes its decisions use (1: it decides alike for everyone,
    whatever its scores' ranking; such a model is never a countermeasure). A model that
    answers with labels only is scored by its labels. Behind an input screen
    (:class:`~finmlsec.defences.InputScreening`), a rejected legitimate record counts as an
    error (a wrong decision, the worst score) and the share rejected is reported as
    ``rejected``.

    Example:
        >>> from types import SimpleNamespace
        >>> from sklearn.linear_model import LogisticRegression
        >>> X, y = [[0.0], [1.0], [2.0], [3.0]], np.array([0, 0, 1, 1])
        >>> u = utility(LogisticRegression().fit(X, y), SimpleNamespace(X=X, y=y))
        >>> u["accuracy"], u["roc_auc"], set(UTILITY_METRICS) <= set(u), u["classes_decided"]
        (1.0, 1.0, True, 2.0)
    """
    from sklearn import metrics as skm

    from finmlsec.defences import InputScreening

    if test is None:
        return {}
    y = np.asarray(test.y)
    out: dict[str, float] = {}
    screened = isinstance(model, InputScreening)
    inner = model.estimator_ if screened else model
    pred = _indices(inner.predict(test.X), getattr(inner, "classes_", None))
    accept = np.ones(len(y), dtype=bool)
    if screened:
        accept = np.asarray(model.decide(test.X).accept, dtype=bool)
        pred = np.where(accept, pred, -1)  # no decision: wrong whatever the truth
    out["accuracy"] = float(np.mean(pred == y))
    labels = np.unique(y)
    out["balanced_accuracy"] = float(np.mean([np.mean(pred[y == c] == c) for c in labels]))
    out["classes_decided"] = float(len(np.unique(pred[accept])))
    if len(labels) == 2 and positive in labels:
        score = _scores(inner, test.X, pred, positive)
        truth = (y == positive).astype(int)
        score = np.where(accept, score, 1.0 - truth)  # a rejected record ranked the wrong way
        decided = (pred == positive).astype(int)
        decided = np.where(accept, decided, 1 - truth)
        out["roc_auc"] = float(skm.roc_auc_score(truth, score))
        out["average_precision"] = float(skm.average_precision_score(truth, score))
        out["f1"] = float(skm.f1_score(truth, decided, zero_division=0))
        out["precision"] = float(skm.precision_score(truth, decided, zero_division=0))
        out["recall"] = float(skm.recall_score(truth, decided, zero_division=0))
    if screened:
        out["rejected"] = float(np.mean(~accept))
    return out


#: the share of the held-out records decided alike above which the deployed model's decisions
#: are called (near-)constant: they carry no information (``summary.warnings``)
CONSTANT_SHARE = 0.99


def decision_spread(target: Any, test: Any, cutoff: Any = None) -> dict[str, Any]:
    """How the deployed ``target`` decides the held-out ``test`` records: ``majority`` (its most
    frequent decision), ``share`` (of the records given it), ``n``, ``classes_decided``,
    ``threshold`` (the spec's ``model.decision_threshold``, None when the model's own
    ``predict`` decides), ``label_share`` (the share of the records whose label is the majority
    decision; None without labels) and ``constant``: at least :data:`CONSTANT_SHARE` decided
    alike, and the other decisions fewer than half as frequent as the other labels (a fraud
    model that flags 0.14% of transactions where 0.2% are frauds decides rarely because fraud is
    rare, not because its decisions carry no information; one that approves every applicant of a
    95/5 file does not). Labels that never match a decision (another encoding) leave the share
    alone to decide.

    Example:
        >>> from types import SimpleNamespace
        >>> from sklearn.dummy import DummyClassifier
        >>> X, y = [[0.0]] * 100, np.array([0] * 95 + [1] * 5)
        >>> d = decision_spread(DummyClassifier().fit(X, y), SimpleNamespace(X=X, y=y))
        >>> d["majority"], d["share"], d["label_share"], d["constant"]
        ('0', 1.0, 0.95, True)
        >>> class Rare:  # flags 2 of 1,000 where 3 are positive
        ...     def predict(self, X): return np.array([1] * 2 + [0] * 998)
        >>> d = decision_spread(Rare(), SimpleNamespace(X=X, y=np.array([1] * 3 + [0] * 997)))
        >>> d["share"], d["label_share"], d["constant"]
        (0.998, 0.997, False)
    """
    pred = np.asarray(target.predict(test.X))
    values, counts = np.unique(pred.astype(str), return_counts=True)
    top = int(np.argmax(counts))
    share = float(counts[top] / max(1, len(pred)))
    labels = getattr(test, "y", None)
    label_share = None
    if labels is not None and len(labels) == len(pred):
        lab = np.asarray(labels).astype(str)
        if np.isin(lab, values).any():
            label_share = float(np.mean(lab == values[top]))
    rare = label_share is None or (1.0 - share) < 0.5 * (1.0 - label_share)
    return {"majority": str(values[top]), "share": share, "n": int(len(pred)),
            "classes_decided": int(len(values)), "label_share": label_share,
            "threshold": None if cutoff is None else float(cutoff.threshold),
            "constant": bool(share >= CONSTANT_SHARE and rare)}


def positive_index(scenario: Any) -> int:
    """The index of the schema's positive class among the model's classes (1 when the schema
    names none): the class whose score ``roc_auc`` and ``average_precision`` rank."""
    schema = getattr(scenario, "schema", None)
    pos = getattr(schema, "positive_class", None)
    classes = [str(c) for c in np.asarray(getattr(scenario.target, "classes_", [])).tolist()]
    return classes.index(str(pos)) if pos is not None and str(pos) in classes else 1


def attack_data_for(scenario: Any, ctx: ScanContext) -> Any:
    """The scenario's standard attack data; the held-out records serve as the victims (the
    applicants an attacker would turn; attacks keep those decided against the attacker) when the
    scenario names none, and ``ctx.endpoint`` as the endpoint."""
    data = scenario.attack_data(standard=True)
    if data.victims is None and data.test is not None:
        data = replace(data, victims=data.test)
    if ctx.endpoint:
        data = replace(data, endpoint=ctx.endpoint)
    return data


def _against_first(labeled: Any, sc: Any) -> Any:
    """The victims with those the deployed model decides against the schema's favourable
    outcome first (a profile's victim limit keeps applicants an evasion can turn)."""
    from finmlsec.attacks.evasion import resolve_class

    fav = getattr(sc.schema, "favourable_class", None)
    if fav is None or sc.target is None or not hasattr(labeled.X, "iloc"):
        return labeled
    try:
        goal = resolve_class(fav, sc.target.classes_, sc.schema)
        order = np.argsort(np.asarray(sc.target.predict(labeled.X)) == goal, kind="stable")
    except (FinmlsecError, ValueError):
        return labeled
    return replace(labeled, X=labeled.X.iloc[order].reset_index(drop=True),
                   y=None if labeled.y is None else np.asarray(labeled.y)[order])


def _head(labeled: Any, n: int) -> Any:
    """The first ``n`` records of a :class:`~finmlsec.attacks.base.Labeled`."""
    X = labeled.X
    X = X.iloc[:n].reset_index(drop=True) if hasattr(X, "iloc") else X[:n]
    return replace(labeled, X=X, y=None if labeled.y is None else labeled.y[:n])


def limit_victims(labeled: Any, sc: Any, n: int) -> Any:
    """At most ``n`` victims, those the deployed model decides against the schema's favourable
    outcome first (as a scan's victim limit and ``finmlsec attack --victims`` take them)."""
    if len(labeled) <= n:
        return labeled
    return _head(_against_first(labeled, sc), n)


def _plugged_screen(attack: Any, defences: tuple[str, ...]) -> str | None:
    """The feedback-stage defence to hand to an attack that simulates the retraining loop
    itself (it has a ``screen`` parameter), if the unit has one."""
    from finmlsec.defences import DEFENCES

    if not dataclasses.is_dataclass(attack) or "screen" not in {
            f.name for f in dataclasses.fields(attack)}:
        return None
    return next((d for d in defences if getattr(DEFENCES.get(d), "stage", "") == "feedback"),
                None)


def _fitted_screen(name: str, data: Any, input_kind: str = "tabular") -> Any:
    """The registered feedback-stage defence ``name``, fitted on the trusted training data. A
    screen that takes them is given the schema's favourable outcome and, for a tabular model,
    the deployed model's algorithm (``model_factory``) to test a report's influence with."""
    from finmlsec.attacks.evasion_common import resolve_class
    from finmlsec.defences import DEFENCES

    screen = DEFENCES.get(name)()
    params = screen.get_params(deep=False) if callable(getattr(screen, "get_params", None)) \
        else {}
    fav = getattr(data.schema, "favourable_class", None)
    if "favourable" in params and fav is not None and data.train is not None:
        # labels that do not name the favourable class: every claim is checked
        with contextlib.suppress(ConfigError):
            screen.set_params(favourable=resolve_class(fav, np.unique(data.train.y), data.schema))
    if "model" in params and input_kind == "tabular" and data.model_factory is not None:
        screen.set_params(model=data.model_factory())
    if callable(getattr(screen, "fit", None)) and data.train is not None:
        screen = screen.fit(data.train.X, data.train.y) or screen
    return screen


def _attack(unit: Unit) -> Any:
    """The unit's attack with the unit's parameters; a parameter the attack does not have is a
    ConfigError naming it and the attack's parameters (never silently dropped)."""
    from finmlsec.attacks import ATTACKS

    cls = ATTACKS.get(unit.attack)
    names = sorted(f.name for f in dataclasses.fields(cls))
    unknown = sorted(set(unit.params) - set(names))
    if unknown:
        raise ConfigError(f"attack {unit.attack!r} has no parameter(s) {unknown}; its "
                          f"parameters: {', '.join(names)}")
    return cls(**unit.params)


class UnitTimeout(Exception):  # noqa: N818 - reported by name in outcomes
    """A unit ran longer than its profile allows."""


#: A unit's limit counts the CPU time of its process (a loaded machine does not stop it
#: early); a unit that waits without computing (a slow remote model) is stopped after this many
#: times its limit of wall time.
WALL_FACTOR = 10.0


class _ThreadWatchdog:
    """Stops the calling thread (not the main thread: a Dask worker's task thread) once it has
    used ``seconds`` of its own CPU time, or :data:`WALL_FACTOR` times as much wall time: a
    watcher thread reads the thread's CPU clock and raises :class:`UnitTimeout` in it
    (``PyThreadState_SetAsyncExc``; it arrives at the thread's next Python instruction, so a
    long call into compiled code finishes first)."""

    POLL = 0.2
    REFIRE = 1.0

    def __init__(self, seconds: float, fired: list[bool]) -> None:
        self.seconds, self.fired = seconds, fired
        self.ident = threading.get_ident()
        self.clock = time.pthread_getcpuclockid(self.ident)
        self.cpu0, self.wall0 = time.clock_gettime(self.clock), time.monotonic()
        self.lock = threading.Lock()
        self.done = False
        self.stop = threading.Event()
        self.watcher = threading.Thread(target=self._watch, name="finmlsec-unit-limit",
                                        daemon=True)
        self.watcher.start()

    def _over(self) -> bool:
        cpu = time.clock_gettime(self.clock) - self.cpu0
        return (cpu >= self.seconds
                or time.monotonic() - self.wall0 >= self.seconds * WALL_FACTOR)

    def _watch(self) -> None:
        import ctypes

        sent = 0.0
        while not self.stop.wait(self.POLL):
            with self.lock:
                if self.done:
                    return
                # sent again every second until the unit ends: an exception that arrives in code
                # that cannot raise it (a __del__ run by the garbage collector, a broad except)
                # is lost, and the unit would otherwise run to its end
                if self._over() and time.monotonic() - sent >= self.REFIRE:
                    self.fired[0] = True
                    sent = time.monotonic()
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(
                        ctypes.c_ulong(self.ident), ctypes.py_object(UnitTimeout))

    def close(self) -> None:
        """Stop watching; withdraw an exception sent but not yet raised (the unit ended first)
        and raise it here instead."""
        import ctypes

        with self.lock:
            self.done = True
        self.stop.set()
        self.watcher.join()
        if self.fired[0]:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.ident), None)


@contextlib.contextmanager
def _time_limit(seconds: float | None) -> Iterator[list[bool]]:
    """Raise :class:`UnitTimeout` after ``seconds`` of CPU time, or :data:`WALL_FACTOR` times as
    much wall time: POSIX timers on the process's CPU time in a process's main thread (local
    workers and serial runs), a watcher of the thread's own CPU clock in any other thread (Dask
    worker threads). Yields a flag list that holds ``True`` once the limit fired (a library may
    have turned the exception into its own)."""
    fired = [False]
    if seconds is None:
        yield fired
        return
    if threading.current_thread() is not threading.main_thread():
        if not hasattr(time, "pthread_getcpuclockid"):  # pragma: no cover - not POSIX
            yield fired
            return
        dog = _ThreadWatchdog(float(seconds), fired)
        try:
            yield fired
        finally:
            dog.close()
        if fired[0]:  # the limit fired but the exception was withdrawn before it arrived
            raise UnitTimeout()
        return
    if not hasattr(signal, "SIGPROF"):  # pragma: no cover - not POSIX
        yield fired
        return

    def _alarm(_sig: int, _frame: Any) -> None:
        fired[0] = True
        raise UnitTimeout()

    old = {sig: signal.signal(sig, _alarm) for sig in (signal.SIGPROF, signal.SIGALRM)}
    signal.setitimer(signal.ITIMER_PROF, float(seconds or 0))
    signal.setitimer(signal.ITIMER_REAL, float(seconds or 0) * WALL_FACTOR)
    try:
        yield fired
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.setitimer(signal.ITIMER_REAL, 0)
        for sig, handler in old.items():
            signal.signal(sig, handler)


def timeout_message(unit: Unit) -> str:
    """Why ``unit`` stopped, and which option raises its limit."""
    base = unit.timeout_base if unit.timeout_base is not None else unit.timeout
    fits = (f", at least {FIT_MARGIN:g} times its {unit.fits:g} fit(s) of the model at "
            f"{unit.fit_seconds:g} s each" if unit.fits and unit.fit_seconds else "")
    return (f"UnitTimeout: the unit ran longer than its limit of {unit.timeout:g} s of CPU time "
            f"(the profile's {base:g} s per unit, scaled to the data size and the attack's "
            f"cost{fits}; or {WALL_FACTOR:g} times as long waiting); raise it with `finmlsec "
            f"scan --unit-timeout SECONDS` (the limit for {REFERENCE_CELLS:,} data cells; 0 for "
            f"none) or use a larger --profile")


def execute_unit(ctx: ScanContext, unit: Unit, bundle: bytes | None = None) -> dict[str, Any]:
    """Run ``unit``; return its outcome (``status``, ``result``, ``utility``, ``error``, ...).
    ``bundle``: the bytes of the scan bundle ``ctx`` names, where this process may not have them
    yet (a Dask worker)."""
    if bundle is not None:
        keep_bundle(bundle)
    start = time.perf_counter()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    out: dict[str, Any] = {"unit": unit.id, "status": "done", "result": None, "utility": None,
                           "error": None, "worker": worker}
    fired = [False]
    cpu = time.thread_time()
    try:
        with threadpool_limits(limits=1), _time_limit(unit.timeout) as fired, \
                recording() as pieces:
            _run(ctx, unit, out)
        if pieces:  # the unit's independent pieces and how long each took (the task graph)
            out["pieces"] = pieces
    except UnitTimeout:
        out.update(status="error", error=timeout_message(unit))
    except NOT_APPLICABLE as exc:
        out.update(status="skipped", error=f"{type(exc).__name__}: {exc}")
        if fired[0]:  # the time limit interrupted a library that reported it its own way
            out.update(status="error", error=timeout_message(unit))
    except Exception as exc:  # noqa: BLE001 - a unit must report, never crash the scan
        tb = traceback.format_exc(limit=-3)
        out.update(status="error", error=timeout_message(unit) if fired[0]
                   else f"{type(exc).__name__}: {exc}\n{tb}")
    out["seconds"] = round(time.perf_counter() - start, 3)
    # CPU time of the unit's own thread (with its inline pieces; not pieces run as tasks)
    out["cpu_seconds"] = round(time.thread_time() - cpu, 3)
    return out


def _run(ctx: ScanContext, unit: Unit, out: dict[str, Any]) -> None:
    from finmlsec.attacks.base import Labeled, check_needs
    from finmlsec.defences import InputScreening, deployable
    from finmlsec.defences.base import released
    from finmlsec.targets.base import as_target
    from finmlsec.targets.oracle import Oracle

    sc = scenario_for(ctx)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    data = attack_data_for(sc, ctx)
    if unit.max_victims is not None and data.victims is not None \
            and len(data.victims) > unit.max_victims:
        data = replace(data, victims=limit_victims(data.victims, sc, unit.max_victims))
    attack = _attack(unit)
    defences = unit.defences
    plug = _plugged_screen(attack, defences)
    if plug is not None:  # the attack runs the feedback loop: the screen goes into the loop
        attack = dataclasses.replace(attack, screen=_fitted_screen(
            plug, data, getattr(sc.target, "input_kind", "tabular")))
        defences = tuple(d for d in defences if d != plug)
    model: Any = None
    if defences:
        fitted = build_defended(sc, defences, unit.defence_seed, attack)
        model = deployable(fitted)
        target = as_target(model, input_kind=sc.target.input_kind)
        if type(attack).reads_training_data and data.train is not None:
            # the attacker holds the training data as the defences share them
            X_rel, y_rel, rows = released(fitted, data.train.X, data.train.y)
            data = replace(data, train=Labeled(X_rel, y_rel),
                           extra={**data.extra, "released_rows": rows})
        if type(attack).retrains_victim:
            data = replace(data, model_factory=defended_factory(sc, defences, unit.defence_seed))
    else:
        target = sc.target
    screened = isinstance(model, InputScreening) and type(attack).generates
    inner = as_target(model.estimator_, input_kind=target.input_kind) if screened else target
    oracle = Oracle(inner, unit.access, budget=unit.budget, input_kind=target.input_kind)
    check_needs(attack, oracle, data)
    result = (through_screen(attack, oracle, data, model) if screened
              else attack.run(oracle, data))
    out["result"] = result.to_dict()
    out["utility"] = utility(model if defences else target, sc.test, positive_index(sc))
    if not defences and sc.test is not None:
        out["decisions"] = decision_spread(target, sc.test, getattr(sc, "cutoff", None))
    # the held-out records, the trials of a success figure measured on them (scan.decide)
    out["n_test"] = None if sc.test is None else len(sc.test.y)
