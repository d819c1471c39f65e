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
those the current model classifies correctly.

Example:
    >>> import numpy as np, pandas as pd
    >>> from sklearn.tree import DecisionTreeClassifier
    >>> from finmlsec.datasets.schema import Feature, FeatureSchema
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"income": rng.integers(0, 100, 400), "debt": rng.integers(0, 100, 400)})
    >>> y = ((X.income - X.debt) > 0).astype(int).to_numpy()
    >>> schema = FeatureSchema(features=(Feature(name="income", type="integer", min=0, max=100),
    ...                                  Feature(name="debt", type="integer", min=0, max=100)))
    >>> at = AdversarialTraining(schema=schema, rounds=2, n_per_round=40,
    ...                          attack_params={"target_class": 1}, random_state=0)
    >>> model = at.apply(DecisionTreeClassifier(max_depth=4, random_state=0), X, y)
    >>> [r.n_added > 0 for r in at.history_]
    [True, True]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone

from finmlsec.datasets.schema import FeatureSchema
from finmlsec.defences._params import check_int
from finmlsec.defences.base import DEFENCES
from finmlsec.errors import CapabilityError, ConfigError, DataError
from finmlsec.targets.oracle import Oracle


@dataclass(frozen=True)
class RoundReport:
    """One round: records attacked, attack success on them, adversarial records added."""

    round: int
    n_attacked: int
    success_rate: float
    n_added: int
    queries: int


def _take(X: Any, idx: np.ndarray) -> Any:
    if isinstance(X, pd.DataFrame):
        return X.iloc[idx].reset_index(drop=True)
    if isinstance(X, list | tuple):
        return [X[int(i)] for i in idx]
    return np.asarray(X)[idx]


def _concat(a: Any, b: Any) -> Any:
    if isinstance(a, pd.DataFrame):
        return pd.concat([a, b.astype(a.dtypes.to_dict())], ignore_index=True)
    if isinstance(a, list | tuple):
        return [*a, *b]
    return np.concatenate([np.asarray(a), np.asarray(b)])


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


@DEFENCES.register("adversarial_training")
class AdversarialTraining(BaseEstimator):
    """Augment the training data with valid adversarial examples, several rounds; see the
    module docstring. ``attack``: a registered evasion attack name; ``attack_params``: its
    parameters (e.g. ``{"target_class": "good", "max_changes": 4}``). ``history_`` holds a
    :class:`RoundReport` per round and ``attack_used_`` the attack's name."""

    countermeasure: ClassVar[str] = "adversarial_training"
    counters: ClassVar[frozenset[str]] = frozenset({"induce_false_prediction"})
    stage: ClassVar[str] = "training"
    summary: ClassVar[str] = "adversarial training with valid constrained adversarial examples"

    def __init__(self, *, attack: str | None = None,
                 attack_params: dict[str, Any] | None = None,
                 schema: FeatureSchema | None = None, rounds: int = 3, n_per_round: int = 100,
                 source_classes: list[Any] | None = None, copies: int = 1,
                 random_state: int | None = None) -> None:
        self.attack = attack
        self.attack_params = attack_params
        self.schema = schema
        self.rounds = rounds
        self.n_per_round = n_per_round
        self.source_classes = source_classes
        self.copies = copies
        self.random_state = random_state

    def _attack(self, kind: str, model: Any, X: Any) -> Any:
        from finmlsec.attacks.base import ATTACKS

        name = self.attack
        params = dict(self.attack_params or {})
        if name is None:
            if kind == "tabular":
                name = "evasion.constrained"
            elif kind == "text":
                name = "evasion.text"
            else:
                grads = "gradient" in Oracle(model, access="white_box", input_kind="image").provides
                name = "evasion.pgd" if grads else "evasion.image"
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
        scores = "proba" in needs or (kind == "text" and hasattr(model, "predict_proba"))
        access = "white_box" if "gradient" in needs else "proba" if scores else "label"
        return Oracle(model, access=access, input_kind=kind)  # type: ignore[arg-type]

    def apply(self, estimator: Any, X: Any, y: Any) -> Any:
        """Fit ``estimator`` with ``rounds`` rounds of adversarial augmentation."""
        name = type(self).__name__
        check_int(name, "rounds", self.rounds, 0, None)
        check_int(name, "n_per_round", self.n_per_round, 1, None)
        check_int(name, "copies", self.copies, 1, None)
        y = np.asarray(y)
        if len(y) != (X.shape[0] if hasattr(X, "shape") else len(X)):
            raise DataError(f"X and y differ in length: {len(X)} vs {len(y)}")
        kind = input_kind(X)
        rng = np.random.default_rng(self.random_state)
        model = clone(estimator).fit(X, y)
        attack = self._attack(kind, model, X)
        self.attack_used_ = str(getattr(attack, "name", type(attack).__name__))
        goal = getattr(attack, "target_class", None)
        sources = self.source_classes
        if sources is None:
            sources = [c for c in np.unique(y) if goal is None or c != goal]
        Xa, ya = X, y
        self.history_: list[RoundReport] = []
        for r in range(1, self.rounds + 1):
            right = np.flatnonzero(np.isin(y, sources) & (np.asarray(model.predict(X)) == y))
            if right.size == 0:
                break
            pick = np.sort(rng.choice(right, size=min(self.n_per_round, right.size),
                                      replace=False))
            oracle = self._oracle(attack, model, kind)
            out = attack.generate(oracle, _take(X, pick), y[pick], self.schema)
            ok = np.flatnonzero(np.asarray(out.success) & np.asarray(out.valid)
                                & (np.asarray(model.predict(out.X_adv)) != y[pick]))
            self.history_.append(RoundReport(r, int(pick.size), float(np.mean(out.success)),
                                             int(ok.size) * self.copies, int(out.queries)))
            if ok.size == 0:
                break
            adv = _take(out.X_adv, ok)
            for _ in range(self.copies):
                Xa = _concat(Xa, adv)
                ya = np.concatenate([ya, y[pick][ok]])
            model = clone(estimator).fit(Xa, ya)
        self.n_augmented_ = int(len(ya) - len(y))
        return model
