"""Serving guards: request-level countermeasures of the gateway, registered in :data:`GUARDS`.

A guard is not a defence of a model (those are the meta-estimators of :data:`DEFENCES`): it acts
on a client's requests (query budgets, extraction detection) or screens single inputs before the
model sees them (the out-of-distribution and feature-squeezing detectors). Every guard is a
:class:`Guard`: keyword parameters stored unchanged (``get_params``, ``clone``), checked against
the class's ``_parameter_constraints`` by :meth:`Guard.validate` (the one place; the gateway
calls it once at start-up), and the class attributes of a defence: ``countermeasure``,
``counters``, ``stage`` (``gateway``: a client's request stream; ``input``: single inputs),
``summary``. Two more declare how it is used:

* ``uses_model``: the guard watches the served model (feature squeezing compares its outputs),
  so :func:`build_guard` hands it the model as ``estimator``;
* ``scanned``: the scan measures it as a countermeasure of its own. It then implements
  :meth:`Guard.wrap`, which puts a fitted model behind the guard as one client meets it (what an
  attack at the gateway meets); the input detectors are measured through the ``input_screen``
  defence, which combines them.

Example:
    >>> from sklearn.linear_model import LogisticRegression
    >>> import numpy as np
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]]); y = np.array([0, 0, 1, 1])
    >>> budget = build_guard("ratelimit.query_budget", per_minute=None, lifetime=4)
    >>> served = budget.wrap(LogisticRegression().fit(X, y), X)
    >>> served.predict(X).tolist()
    [0, 0, 1, 1]
"""

from __future__ import annotations

from typing import Any, ClassVar

from sklearn.base import BaseEstimator

from finmlsec.defences._params import validate_params
from finmlsec.errors import CapabilityError, ConfigError
from finmlsec.registry import Registry


class Guard(BaseEstimator):
    """Base class of the registered serving guards (see the module docstring)."""

    countermeasure: ClassVar[str]
    counters: ClassVar[frozenset[str]]
    stage: ClassVar[str]
    summary: ClassVar[str]
    uses_model: ClassVar[bool] = False
    scanned: ClassVar[bool] = False
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {}
    _fast_params: ClassVar[dict[str, Any]] = {}

    def validate(self) -> Any:
        """Raise :class:`~finmlsec.errors.ConfigError` on a bad parameter; return self."""
        validate_params(type(self).__name__, self.get_params(deep=False),
                        self._parameter_constraints)
        return self

    def wrap(self, model: Any, X: Any = None) -> Any:
        """``model`` (fitted) behind this guard, as one client meets it; ``X``: the model's
        training data (the guard's reference where it needs one). For ``scanned`` guards."""
        raise CapabilityError(
            f"{type(self).__name__} is not measured on its own by the scan; it is measured "
            "through the defence that combines it")


GUARDS: Registry[type[Guard]] = Registry("guard")


def build_guard(name: str, model: Any = None, **params: Any) -> Any:
    """The registered guard ``name`` with ``params``, watching ``model`` if it ``uses_model``;
    its parameters checked (:class:`~finmlsec.errors.ConfigError` on a bad one)."""
    cls = GUARDS.get(name)
    known = sorted(cls._get_param_names())
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ConfigError(f"guard {name!r} has no parameter(s) {unknown}; its parameters: "
                          f"{', '.join(known)}")
    if cls.uses_model:
        params = {"estimator": model, **params}
    return cls(**params).validate()


def measured() -> list[tuple[str, type]]:
    """What the scan can try against a threat, by name: every defence and every ``scanned``
    guard (the names of the two registries are distinct)."""
    from finmlsec.defences.base import DEFENCES

    return sorted([*DEFENCES.items(), *((n, c) for n, c in GUARDS.items() if c.scanned)])


def measured_class(name: str) -> type:
    """The class of the defence or scanned guard ``name`` (:func:`measured`); a
    :class:`~finmlsec.errors.RegistryError` naming the choices for anything else."""
    found = dict(measured())
    if name in found:
        return found[name]
    from finmlsec.defences.base import DEFENCES

    return DEFENCES.get(name)  # unknown: the defence registry's error, with its hint
