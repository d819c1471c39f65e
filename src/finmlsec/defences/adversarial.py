"""Adversarial training for any model, trees included.

Each round: fit the model; attack it with a registered evasion attack's
``generate(oracle, X, y, schema)``; add the successful, valid adversarial
records to the training data **with their true labels**; refit. After ``rounds`` rounds the
model has seen the changes an attacker would make and answers them correctly.

The attack is ``attack`` if named, else chosen by the kind of input: ``evasion.constrained`` for
tabular records (a DataFrame: black-box, valid records only, so it works for trees and ensembles
as well as networks), ``evasion.text`` for text (a list of strings), and for images (a numeric
numpy array) ``evasion.pgd`` when the model gives gradients, ``evasion.image`` (SimBA, scores
only) otherwise; image attacks get the data's value range as their clipping bounds unless
``attack_params`` sets them. Any other input is refused with a :class:`CapabilityError`.

Only records of the classes the attacker wants to leave (``source_classes``, default: every class
but the attack's ``target_class``) are attacked; ``n_per_round`` of them, drawn at random among
those the current model classifies correctly. The defender owns the model, so the attack gets the
richest access it can use: gradients if it needs them, else scores when the model has
``predict_proba``, else labels; tabular attacks that take a ``population`` get the training data.

``budget`` (tabular records) bounds what the attacker may change in each record, as a dict from
field name to: for numbers, the largest relative change (0.1: within 10% of the record's value);
for categories, the largest number of steps in the schema's order of categories; for binary
fields, any value (1). Fields absent from the budget, and fields the schema makes immutable or
non-actionable, stay as they are. Each record is attacked with the schema narrowed around it
(:func:`budget_schema`). Without a budget the attack may move actionable fields anywhere in
their range, which on credit data includes real changes of the application (a smaller amount, a
shorter duration) that legitimately change the risk: an adversarial example is a change that
should *not* change the decision.

``method``: ``"augment"`` (the rounds above, any model), ``"in_loop"`` (Madry et al. 2018: for a
model trained by mini-batches that takes an ``adversarial`` training option, such as
:class:`~finmlsec.targets.torch_estimator.TorchClassifier`, PGD examples are made against the
current weights for every mini-batch and trained on; ``eps``, ``clip_min``, ``clip_max`` and
``random_start`` come from the ``evasion.pgd`` parameters in ``attack_params``, the other training
options, e.g. ``{"steps": 7, "loss": "trades"}``, from ``loop_params``), or ``"auto"`` (the
default: ``in_loop`` for images with such a model and a gradient attack, ``augment`` otherwise).
With ``in_loop`` ``history_`` holds one report: the attack run after training on
``n_per_round`` training records, and ``n_added`` / ``n_augmented_`` count the PGD examples
trained on; ``rounds`` and ``copies`` apply to ``augment`` only.

Example:
    >>> import numpy as np, pandas as pd
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> from finmlsec.schema import Feature, FeatureSchema
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"income": rng.integers(0, 100, 400), "debt": rng.integers(0, 100, 400)})
    >>> y = ((X.income - X.debt) > 0).astype(int).to_numpy()
    >>> schema = FeatureSchema(features=(Feature(name="income", type="integer", min=0, max=100),
    ...                                  Feature(name="debt", type="integer", min=0, max=100)))
    >>> at = AdversarialTraining(DecisionTreeClassifier(max_depth=4, random_state=0),
    ...                          schema=schema, rounds=2, n_per_round=40,
    ...                          attack_params={"target_class": 1}, random_state=0).fit(X, y)
    >>> [r.n_added > 0 for r in at.history_]
    [True, True]
    >>> narrow = budget_schema(schema, X.iloc[0], {"income": 0.1})  # within 10% of 85
    >>> (narrow["income"].min, narrow["income"].max), narrow["debt"].mutable
    ((77.0, 93.0), False)
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import clone

from finmlsec.arrays import concat_rows, take_rows
from finmlsec.attacks.evasion_common import EvasionOutput
from finmlsec.defences._params import Int, OneOf, Satisfies
from finmlsec.defences.base import DEFENCES, Defence
from finmlsec.errors import CapabilityError, ConfigError, DataError
from finmlsec.schema import FeatureSchema, FeatureType
from finmlsec.targets.oracle import Oracle


@dataclass(frozen=True)
class RoundReport:
    """One round: records attacked, attack success on them, adversarial records added."""

    round: int
    n_attacked: int
    success_rate: float
    n_added: int
    queries: int


def input_kind(X: Any) -> str:
    """``tabular`` (a DataFrame), ``text`` (a sequence of strings) or ``image`` (a numeric array);
    a :class:`CapabilityError` for anything else."""
    if isinstance(X, pd.DataFrame):
        return "tabular"
    if isinstance(X, list | tuple | np.ndarray | pd.Series) and len(X) and all(
            isinstance(t, str) for t in (X[:50] if not isinstance(X, pd.Series) else X.iloc[:50])):
        return "text"
    if isinstance(X, np.ndarray) and X.ndim >= 2 and np.issubdtype(X.dtype, np.number):
        return "image"
    raise CapabilityError(
        f"adversarial_training supports tabular records (a pandas DataFrame), text (a list of "
        f"strings) and images (a numeric numpy array of shape (n, ...)); got "
        f"{type(X).__name__}{getattr(X, 'shape', '')}. Convert the inputs to one of these"
    )


def budget_schema(schema: FeatureSchema, record: Any, budget: dict[str, float]) -> FeatureSchema:
    """``schema`` narrowed around one ``record`` (a row: Series or mapping) to a perturbation
    ``budget`` (see the module docstring): numbers within ``budget[name]`` times their value (an
    integer range is rounded inwards), categories within ``budget[name]`` steps of the record's in
    the schema's order; every other field non-actionable."""
    unknown = sorted(set(budget) - set(schema.names))
    if unknown:
        raise ConfigError(
            f"The 'budget' parameter names field(s) {unknown} that the schema does not have; "
            f"known: {schema.names}"
        )
    feats = []
    for f in schema.features:
        if f.name not in budget or not f.mutable:
            feats.append(f.model_copy(update={"actionable": False}))
            continue
        b = budget[f.name]
        if isinstance(b, bool) or not isinstance(b, int | float) or not b >= 0:
            raise ConfigError(
                f"The 'budget' parameter: the budget of {f.name!r} must be a number >= 0. Got "
                f"{b!r} instead."
            )
        v = record[f.name]
        if f.type == FeatureType.CATEGORICAL:
            cats = list(f.categories or ())
            if str(v) not in cats:
                raise DataError(f"column {f.name!r}: {v!r} is not among the categories {cats}")
            i, k = cats.index(str(v)), int(b)
            feats.append(f.model_copy(update={"categories": tuple(cats[max(0, i - k): i + k + 1])}))
        elif f.type == FeatureType.BINARY:
            feats.append(f if b >= 1 else f.model_copy(update={"actionable": False}))
        else:
            x = float(v)
            lo, hi = x - abs(x) * float(b), x + abs(x) * float(b)
            if f.type == FeatureType.INTEGER:
                lo, hi = float(np.ceil(lo - 1e-9)), float(np.floor(hi + 1e-9))
            lo = max(lo, f.min) if f.min is not None else lo
            hi = min(hi, f.max) if f.max is not None else hi
            feats.append(f.model_copy(update={"min": min(lo, x), "max": max(hi, x)}))
    return schema.model_copy(update={"features": tuple(feats)})


def _with_adversarial_option(estimator: Any) -> bool:
    get = getattr(estimator, "get_params", None)
    return callable(get) and "adversarial" in get(deep=False)


@DEFENCES.register("adversarial_training")
class AdversarialTraining(Defence):
    """Augment the training data with valid adversarial examples, several rounds; see the
    module docstring. ``attack``: a registered evasion attack name; ``attack_params``: its
    parameters (e.g. ``{"target_class": "good", "max_changes": 4}``); ``budget``: per-field
    limits of the change (tabular); ``method``: ``"auto"``, ``"augment"`` or ``"in_loop"``;
    ``loop_params``: in-loop training options. ``estimator_`` is the adversarially trained model,
    ``history_`` holds a :class:`RoundReport` per round, ``attack_used_`` the attack's name and
    ``method_used_`` the method.

    :attr:`training_attacks` declares the attack it trains against per kind of input when
    ``attack`` is None (for images without gradients, ``evasion.image`` instead); the scan
    configures that attack's budget from the attack it measures (``attack_params``)."""

    countermeasure: ClassVar[str] = "adversarial_training"
    counters: ClassVar[frozenset[str]] = frozenset({"induce_false_prediction"})
    stage: ClassVar[str] = "training"
    summary: ClassVar[str] = "adversarial training with valid constrained adversarial examples"
    transparent: ClassVar[bool] = True
    #: the evasion attack trained against, per kind of input (``attack`` None)
    training_attacks: ClassVar[dict[str, str]] = {
        "image": "evasion.pgd", "tabular": "evasion.constrained", "text": "evasion.text"}
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "attack": [Satisfies(lambda v: isinstance(v, str), "a str"), None],
        "attack_params": [Satisfies(lambda v: isinstance(v, dict), "a dict"), None],
        "rounds": [Int(0)], "n_per_round": [Int(1)], "copies": [Int(1)],
        "budget": [Satisfies(lambda v: isinstance(v, dict) and len(v) > 0,
                             "a non-empty dict from field name to the largest change"), None],
        "method": [OneOf(("auto", "augment", "in_loop"))],
        "loop_params": [Satisfies(lambda v: isinstance(v, dict), "a dict"), None],
        "random_state": [Int(0), None],
    }
    _fast_params: ClassVar[dict[str, Any]] = {
        "rounds": 1, "n_per_round": 10, "attack_params": {"max_changes": 1, "n_anchors": 4}}
    #: scikit-learn's checks give numeric arrays (images, to this defence): a short SimBA run
    _sklearn_check_params: ClassVar[dict[str, Any]] = {
        "rounds": 1, "n_per_round": 5, "attack_params": {"max_iter": 8}}
    _sklearn_check_deviations: ClassVar[dict[str, str]] = {
        **dict.fromkeys(("check_dtype_object", "check_estimator_sparse_tag",
                         "check_estimator_sparse_array", "check_estimator_sparse_matrix",
                         "check_classifier_data_not_an_array", "check_classifiers_train",
                         "check_fit1d"),
                        "it attacks DataFrames, lists of strings or numeric arrays; other inputs "
                        "(object or sparse arrays, lists of numeric rows, 1-d data) are refused "
                        "with a CapabilityError naming what it takes"),
    }

    def __init__(self, estimator: Any = None, *, attack: str | None = None,
                 attack_params: dict[str, Any] | None = None,
                 schema: FeatureSchema | None = None, rounds: int = 3, n_per_round: int = 100,
                 source_classes: list[Any] | None = None, copies: int = 1,
                 budget: dict[str, float] | None = None, method: str = "auto",
                 loop_params: dict[str, Any] | None = None,
                 random_state: int | None = None) -> None:
        self.estimator = estimator
        self.attack = attack
        self.attack_params = attack_params
        self.schema = schema
        self.rounds = rounds
        self.n_per_round = n_per_round
        self.source_classes = source_classes
        self.copies = copies
        self.budget = budget
        self.method = method
        self.loop_params = loop_params
        self.random_state = random_state

    def _attack(self, kind: str, model: Any, X: Any) -> Any:
        from finmlsec.attacks.base import ATTACKS

        name = self.attack
        params = dict(self.attack_params or {})
        if name is None:
            name = self.training_attacks[kind]
            if kind == "image" and "gradient" not in Oracle(
                    model, access="white_box", input_kind="image").provides:
                name = "evasion.image"
        cls = ATTACKS.get(name)
        if not callable(getattr(cls, "generate", None)):
            raise ConfigError(
                f"The 'attack' parameter of {type(self).__name__} must name an evasion attack "
                f"with generate(oracle, X, y, schema). Got {name!r} instead."
            )
        if kind == "image" and "clip_min" in getattr(cls, "__dataclass_fields__", {}):
            arr = np.asarray(X, dtype=float)
            params.setdefault("clip_min", float(arr.min()))
            params.setdefault("clip_max", float(arr.max()))
        return cls(**params)

    @staticmethod
    def _oracle(attack: Any, model: Any, kind: str) -> Oracle:
        needs: frozenset[str] = getattr(attack, "needs", frozenset())
        scores = callable(getattr(model, "predict_proba", None))
        access = "white_box" if "gradient" in needs else "proba" if scores else "label"
        return Oracle(model, access=access, input_kind=kind)  # type: ignore[arg-type]

    def _generate(self, attack: Any, oracle: Oracle, X: Any, y: np.ndarray, population: Any
                  ) -> EvasionOutput:
        takes_pop = "population" in inspect.signature(attack.generate).parameters
        extra = {"population": population} if takes_pop else {}
        if self.budget is None:
            return attack.generate(oracle, X, y, self.schema, **extra)
        assert self.schema is not None
        parts = [attack.generate(oracle, X.iloc[[i]], y[i:i + 1],
                                 budget_schema(self.schema, X.iloc[i], self.budget), **extra)
                 for i in range(len(X))]
        return EvasionOutput(
            X_adv=pd.concat([p.X_adv for p in parts], ignore_index=True),
            success=np.concatenate([np.asarray(p.success, dtype=bool) for p in parts]),
            valid=np.concatenate([np.asarray(p.valid, dtype=bool) for p in parts]),
            queries=int(sum(p.queries for p in parts)))

    def _method(self, kind: str, estimator: Any) -> str:
        loopable = _with_adversarial_option(estimator)
        gradient_attack = self.attack in (None, "evasion.pgd")
        if self.method == "in_loop":
            if not loopable or kind != "image" or not gradient_attack:
                raise CapabilityError(
                    "adversarial_training method='in_loop' trains on PGD examples inside the "
                    "training loop: it needs numeric array inputs, attack None or 'evasion.pgd', "
                    "and a model with an 'adversarial' training option (TorchClassifier); got "
                    f"{type(estimator).__name__} on {kind} inputs with attack {self.attack!r}. "
                    "Use method='augment' for other models"
                )
            return "in_loop"
        if self.method == "auto" and loopable and kind == "image" and gradient_attack:
            return "in_loop"
        if self.loop_params is not None:
            raise ConfigError(
                f"The 'loop_params' parameter of {type(self).__name__} applies to "
                "method='in_loop' only; this run augments"
            )
        return "augment"

    def fit_cost(self) -> float:
        """The first fit and a refit each round (augmentation; training with the attack in the
        loop is one longer fit, counted the same)."""
        return float(self.rounds + 1)

    def _fit(self, X: Any, y: Any) -> None:
        """Fit ``estimator`` adversarially: ``rounds`` rounds of augmentation, or PGD inside the
        training loop (see the module docstring)."""
        self._adopt(self._train(self._inner(), X, y))

    def _train(self, estimator: Any, X: Any, y: Any) -> Any:
        name = type(self).__name__
        y = np.asarray(y)
        if len(y) != (X.shape[0] if hasattr(X, "shape") else len(X)):
            raise DataError(f"X and y differ in length: {len(X)} vs {len(y)}")
        kind = input_kind(X)
        if self.budget is not None:
            if kind != "tabular" or self.schema is None:
                raise CapabilityError(
                    f"{name}: a 'budget' limits changes of tabular fields; it needs tabular "
                    f"records (a DataFrame) and a 'schema'; got {kind} inputs"
                    + ("" if self.schema is not None else " and no schema")
                )
            budget_schema(self.schema, X.iloc[0], self.budget)  # checks names and values
        method = self._method(kind, estimator)
        self.method_used_ = method
        rng = np.random.default_rng(self.random_state)
        if method == "in_loop":
            return self._in_loop(estimator, X, y, rng)
        model = clone(estimator).fit(X, y)
        attack = self._attack(kind, model, X)
        self.attack_used_ = str(getattr(attack, "name", type(attack).__name__))
        sources = self._sources(attack, y)
        Xa, ya = X, y
        self.history_: list[RoundReport] = []
        for r in range(1, self.rounds + 1):
            right = np.flatnonzero(np.isin(y, sources) & (np.asarray(model.predict(X)) == y))
            if right.size == 0:
                break
            pick = np.sort(rng.choice(right, size=min(self.n_per_round, right.size),
                                      replace=False))
            oracle = self._oracle(attack, model, kind)
            out = self._generate(attack, oracle, take_rows(X, pick), y[pick],
                                 X if kind == "tabular" else None)
            ok = np.flatnonzero(np.asarray(out.success) & np.asarray(out.valid)
                                & (np.asarray(model.predict(out.X_adv)) != y[pick]))
            self.history_.append(RoundReport(r, int(pick.size), float(np.mean(out.success)),
                                             int(ok.size) * self.copies, int(out.queries)))
            if ok.size == 0:
                break
            adv = take_rows(out.X_adv, ok)
            for _ in range(self.copies):
                Xa = concat_rows(Xa, adv, cast=True)
                ya = np.concatenate([ya, y[pick][ok]])
            model = clone(estimator).fit(Xa, ya)
        self.n_augmented_ = int(len(ya) - len(y))
        return model

    def _sources(self, attack: Any, y: np.ndarray) -> list[Any]:
        goal = getattr(attack, "target_class", None)
        if self.source_classes is not None:
            return list(self.source_classes)
        return [c for c in np.unique(y) if goal is None or c != goal]

    def _in_loop(self, estimator: Any, X: Any, y: np.ndarray, rng: np.random.Generator) -> Any:
        from finmlsec.targets.torch_estimator import ADVERSARIAL_KEYS

        attack = self._attack("image", estimator, X) if self.attack is not None else None
        if attack is None:
            from finmlsec.attacks.base import ATTACKS

            params = dict(self.attack_params or {})
            arr = np.asarray(X, dtype=float)
            params.setdefault("clip_min", float(arr.min()))
            params.setdefault("clip_max", float(arr.max()))
            attack = ATTACKS.get("evasion.pgd")(**params)
        self.attack_used_ = str(attack.name)
        loop = dict(self.loop_params or {})
        unknown = sorted(set(loop) - set(ADVERSARIAL_KEYS))
        if unknown:
            raise ConfigError(
                f"The 'loop_params' parameter of {type(self).__name__} has unknown key(s) "
                f"{unknown}; known: {sorted(ADVERSARIAL_KEYS)}"
            )
        opts = {"eps": float(attack.eps), "clip_min": attack.clip_min,
                "clip_max": attack.clip_max, "random_start": bool(attack.random_start), **loop}
        model = clone(estimator).set_params(adversarial=opts).fit(X, y)
        made = int(getattr(model, "adversarial_examples_", 0))
        sources = self._sources(attack, y)
        right = np.flatnonzero(np.isin(y, sources) & (np.asarray(model.predict(X)) == y))
        pick = np.sort(rng.choice(right, size=min(self.n_per_round, right.size), replace=False))
        self.history_ = []
        if pick.size:
            out = attack.generate(self._oracle(attack, model, "image"), take_rows(X, pick), y[pick])
            self.history_.append(RoundReport(1, int(pick.size), float(np.mean(out.success)),
                                             made, int(out.queries)))
        self.n_augmented_ = made
        return model
