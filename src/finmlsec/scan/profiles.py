"""Scan profiles: how much work a scan does.

A profile bounds the oracle's query budget, how many attacks run per threat, how many defences
per countermeasure and which combinations of countermeasures are tried, and it scales the
attacks' own size parameters (reference models, shadow models, victims, rounds) where an attack
has a parameter of that name. ``order`` decides which attacks a threat gets first, read from the
attack classes (``cost_rank`` or ``strength_rank``): the quick profile prefers cheap attacks, the
others the strongest. A parameter a profile sets that no registered attack has is an error.

Example:
    >>> from finmlsec.scan.profiles import get_profile
    >>> p = get_profile("quick")
    >>> p.max_attacks, p.combinations
    (1, 0)
    >>> get_profile("fast")
    Traceback (most recent call last):
    ...
    finmlsec.errors.ConfigError: The 'profile' parameter of scan must be one of ['quick', 'standard', 'thorough']. Got 'fast' instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from finmlsec.errors import ConfigError


def _fields(attack_cls: type) -> set[str]:
    if not dataclasses.is_dataclass(attack_cls):
        return set()
    return {f.name for f in dataclasses.fields(attack_cls)}


class Profile(BaseModel):
    """How much a scan does. ``overrides`` maps an attack parameter name to the value to use
    (applied only to attacks that have a parameter of that name); ``attack_params`` sets
    parameters of one named attack; ``only``, when not empty, restricts the scan to the attacks
    named there (``only_defences`` likewise for defences); ``unit_timeout`` stops a unit that
    runs longer (seconds of wall time; it is then reported as an error saying so); ``repeats``:
    how many seeds every attack runs with, as deployed and under each defence (the
    seed-to-seed spread enters the test of whether a countermeasure helps); ``order``:
    which attacks of a threat run first, the cheapest (``cost``) or the strongest
    (``strength``)."""

    model_config = ConfigDict(frozen=True)

    name: str
    budget: int
    max_attacks: int
    max_defences: int
    combinations: int
    max_utility_drop: float = 0.05
    max_victims: int | None = None
    only: tuple[str, ...] = ()
    only_defences: tuple[str, ...] = ()
    unit_timeout: float | None = None
    repeats: int = Field(default=1, ge=1, le=10)
    order: Literal["cost", "strength"] = "strength"
    overrides: dict[str, Any] = {}
    attack_params: dict[str, dict[str, Any]] = {}

    def params_for(self, attack_cls: type) -> dict[str, Any]:
        """The parameters this profile sets on ``attack_cls`` (a dataclass)."""
        names = _fields(attack_cls)
        params = {k: v for k, v in self.overrides.items() if k in names}
        params.update(self.attack_params.get(getattr(attack_cls, "name", ""), {}))
        return params

    def check(self, attacks: Iterable[tuple[str, type]]) -> None:
        """Raise ConfigError, naming the key and the known ones, for an override no attack in
        ``attacks`` (name, class) takes, an ``attack_params`` or ``only`` entry naming no such
        attack, or an ``attack_params`` parameter that attack does not have."""
        classes = dict(attacks)
        every = sorted(set().union(*(_fields(c) for c in classes.values())))
        for key in self.overrides:
            if key not in every:
                raise ConfigError(
                    f"The profile {self.name!r} overrides {key!r}, a parameter no registered "
                    f"attack has; known parameters: {', '.join(every)}")
        for name in [*self.attack_params, *self.only]:
            if name not in classes:
                raise ConfigError(
                    f"The profile {self.name!r} names attack {name!r}, which is not registered; "
                    f"known attacks: {', '.join(sorted(classes))}")
        for name, params in self.attack_params.items():
            own = sorted(_fields(classes[name]))
            for key in params:
                if key not in own:
                    raise ConfigError(
                        f"The profile {self.name!r} sets {key!r} on attack {name!r}, which has "
                        f"no such parameter; its parameters: {', '.join(own)}")

    def rank(self, attack_cls: Any) -> tuple[int, str]:
        """Sort key of ``attack_cls`` among the attacks for one threat (lower runs first)."""
        rank = attack_cls.cost_rank if self.order == "cost" else attack_cls.strength_rank
        return (int(rank), str(attack_cls.name))


#: the feedback loops, tabular and for text and images: one campaign against several targets
FEEDBACK_LOOPS = ("poisoning.feedback_loop", "poisoning.feedback_loop_unstructured")


def feedback_targets(n: int) -> dict[str, dict[str, Any]]:
    """``attack_params`` giving every feedback loop ``n`` targets a seed: the success is the share
    flipped, with its Clopper-Pearson interval (one target flipped or not is no estimate)."""
    return {name: {"n_targets": n} for name in FEEDBACK_LOOPS}


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        name="quick", budget=10_000, max_attacks=1, max_defences=1, combinations=0,
        max_victims=20, unit_timeout=20.0, order="cost",
        overrides={"n_reference": 4, "n_shadow": 2, "max_rounds": 6, "n_uniform": 500,
                   "max_victims": 50, "n_population": 250},
        attack_params={"extraction.learning": {"budget": 500, "rounds": 5},
                       **feedback_targets(5)},
    ),
    "standard": Profile(
        name="standard", budget=25_000, max_attacks=2, max_defences=2, combinations=1,
        max_victims=100, unit_timeout=120.0, repeats=2,
        overrides={"n_reference": 8, "n_shadow": 4, "max_rounds": 8, "n_uniform": 1000,
                   "max_victims": 100},
        attack_params={"extraction.learning": {"budget": 1000},
                       **feedback_targets(10)},
    ),
    "thorough": Profile(
        name="thorough", budget=200_000, max_attacks=99, max_defences=99, combinations=99,
        repeats=3, unit_timeout=900.0,
        overrides={"n_reference": 64, "n_shadow": 8},
        attack_params=feedback_targets(20),
    ),
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(
            f"The 'profile' parameter of scan must be one of {list(PROFILES)}. Got {name!r} "
            "instead."
        ) from None
