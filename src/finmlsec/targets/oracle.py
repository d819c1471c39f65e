"""The oracle: the only way an attack reaches a target.

It fixes the attacker's access level (full probabilities, rounded probabilities, label only, or
white-box), counts every record queried, enforces a query budget (a query that would exceed it is
refused whole, before the target sees it) and can keep a query log.

Example:
    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> from finmlsec.targets.oracle import Oracle
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0, 0, 1, 1])
    >>> oracle = Oracle(LogisticRegression().fit(X, y), access="label", budget=3, input_kind="image")
    >>> oracle.predict(X[:2]).tolist()
    [0, 0]
    >>> oracle.queries_used, oracle.remaining
    (2, 1)
    >>> oracle.predict_proba(X[:1])
    Traceback (most recent call last):
    ...
    finmlsec.errors.CapabilityError: this oracle gives labels only (access='label'), but predict_proba was called; use an attack that needs only labels, or an oracle with access='proba'
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from finmlsec.errors import BudgetExceededError, CapabilityError, ConfigError
from finmlsec.schema import InputKind
from finmlsec.targets.base import Target, as_target


class Access(StrEnum):
    """What the attacker sees of the model's output."""

    PROBA = "proba"  # full confidence values
    ROUNDED = "rounded"  # confidence values rounded to ``decimals``
    LABEL = "label"  # the decision only
    WHITE_BOX = "white_box"  # probabilities plus the model itself (gradients)


#: What each access level provides, in the vocabulary of ``Attack.needs``.
PROVIDES: dict[Access, frozenset[str]] = {
    Access.PROBA: frozenset({"proba", "label"}),
    Access.ROUNDED: frozenset({"proba", "label", "rounded"}),
    Access.LABEL: frozenset({"label"}),
    Access.WHITE_BOX: frozenset({"proba", "label", "gradient", "white_box"}),
}


@dataclass(frozen=True)
class QueryRecord:
    """One call to the oracle: which method and how many records."""

    method: str
    n: int


def _n_records(X: Any) -> int:
    if hasattr(X, "shape"):
        return int(X.shape[0])
    return len(X)


class Oracle:
    """A counted, budgeted, access-limited view of a target."""

    def __init__(
        self,
        target: Any,
        access: Access | str = Access.PROBA,
        *,
        budget: int | None = None,
        decimals: int = 2,
        keep_log: bool = False,
        input_kind: InputKind = "tabular",
    ) -> None:
        try:
            self.access = Access(access)
        except ValueError:
            raise ConfigError(
                f"The 'access' parameter of Oracle must be one of "
                f"{[a.value for a in Access]}. Got {access!r} instead."
            ) from None
        if budget is not None and (not isinstance(budget, int) or budget < 0):
            raise ConfigError(
                f"The 'budget' parameter of Oracle must be an int >= 0 or None. Got {budget!r} "
                "instead."
            )
        if not isinstance(decimals, int) or not 0 <= decimals <= 15:
            raise ConfigError(
                f"The 'decimals' parameter of Oracle must be an int in [0, 15]. Got {decimals!r} "
                "instead."
            )
        self.target: Target = as_target(target, input_kind=input_kind)
        if self.access != Access.LABEL and "proba" not in self.target.capabilities:
            raise CapabilityError(
                f"access={self.access.value!r} needs probabilities, but the target gives "
                "labels only; use access='label'"
            )
        self.budget = budget
        self.decimals = decimals
        self.queries_used = 0
        self.keep_log = keep_log
        self.log: list[QueryRecord] = []

    # -- capabilities -------------------------------------------------------------------------
    @property
    def provides(self) -> frozenset[str]:
        caps = set(PROVIDES[self.access])
        if self.access == Access.WHITE_BOX and "gradient" not in self.target.capabilities:
            caps.discard("gradient")
        return frozenset(caps)

    @property
    def classes_(self) -> np.ndarray:
        return self.target.classes_

    @property
    def input_kind(self) -> InputKind:
        return self.target.input_kind

    def require(self, needs: Iterable[str], who: str = "this attack") -> None:
        """Raise :class:`CapabilityError` unless this oracle provides everything in ``needs``
        (oracle-side needs only: proba, label, gradient, white_box, rounded)."""
        oracle_side = {"proba", "label", "gradient", "white_box", "rounded"}
        missing = sorted(set(needs) & oracle_side - self.provides)
        if missing:
            raise CapabilityError(
                f"{who} needs {missing}, but this oracle (access={self.access.value!r}) provides "
                f"only {sorted(self.provides)}"
            )

    # -- budget ---------------------------------------------------------------------------------
    @property
    def remaining(self) -> int | None:
        return None if self.budget is None else self.budget - self.queries_used

    def _charge(self, method: str, X: Any) -> None:
        n = _n_records(X)
        if self.budget is not None and self.queries_used + n > self.budget:
            raise BudgetExceededError(
                f"query budget exhausted: {self.queries_used} of {self.budget} used, {n} more "
                f"requested by {method}; raise the budget or make the attack use fewer queries",
                used=self.queries_used,
                budget=self.budget,
            )
        self.queries_used += n
        if self.keep_log:
            self.log.append(QueryRecord(method, n))

    # -- queries --------------------------------------------------------------------------------
    def predict(self, X: Any) -> np.ndarray:
        """The labels the target returns; costs one query per record."""
        self._charge("predict", X)
        return self.target.predict(X)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities as this access level shows them; costs one query per record."""
        if self.access == Access.LABEL:
            raise CapabilityError(
                "this oracle gives labels only (access='label'), but predict_proba was called; "
                "use an attack that needs only labels, or an oracle with access='proba'"
            )
        self._charge("predict_proba", X)
        p = self.target.predict_proba(X)
        if self.access == Access.ROUNDED:
            p = np.round(p, self.decimals)
        return p

    def decide(self, proba: Any) -> np.ndarray:
        """The decisions (class labels) the target takes on probabilities it answered: at the
        bank's cut-off where the spec gives one (``model.decision_threshold``; an attacker who
        sees scores and decisions reads it off where the decisions change), else the most
        probable class. Costs no query."""
        return np.asarray(self.classes_)[self.decided_columns(proba)]

    def decided_columns(self, proba: Any) -> np.ndarray:
        """The columns (class positions) of the decisions :meth:`decide` gives. Costs no
        query."""
        from finmlsec.targets.cutoff import decision_columns

        P = np.asarray(proba, dtype=float)
        if len(self.classes_) != P.shape[-1]:
            return np.asarray(np.argmax(P, axis=1))
        return decision_columns(self.target, P)

    def gradient(self, X: Any, y: Any) -> np.ndarray:
        """Gradient of the loss w.r.t. the input (white-box only); costs one query per record."""
        if "gradient" not in self.provides:
            raise CapabilityError(
                f"gradients need access='white_box' on a differentiable target; this oracle has "
                f"access={self.access.value!r} and the target provides "
                f"{sorted(self.target.capabilities)}"
            )
        self._charge("gradient", X)
        return self.target.gradient(X, y)  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return (
            f"Oracle({self.target!r}, access={self.access.value!r}, "
            f"used={self.queries_used}, budget={self.budget})"
        )
