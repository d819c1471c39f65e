"""Scan profiles: how much work a scan does.

A profile bounds the oracle's query budget, how many attacks run per threat, how many defences
per countermeasure and which combinations of countermeasures are tried, and it scales the
attacks' own size parameters (reference models, shadow models, victims, rounds) where an attack
has a parameter of that name. The preference order decides which attacks a threat gets first:
the quick profile prefers cheap attacks, the others the strongest.

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

from typing import Any

from pydantic import BaseModel, ConfigDict

from finmlsec.errors import ConfigError

_CHEAP_FIRST = (
    "membership.metric", "inversion.attribute", "extraction.equation", "extraction.tree_path",
    "extraction.learning", "evasion.constrained", "evasion.text", "evasion.image", "evasion.pgd",
    "poisoning.label_flip", "poisoning.feedback_loop", "poisoning.backdoor",
    "poisoning.optimal_linear", "membership.label_only", "membership.shadow", "membership.rmia",
    "membership.lira", "evasion.transfer", "dos.load",
)
_STRONG_FIRST = (
    "membership.lira", "inversion.attribute", "membership.rmia", "membership.shadow",
    "membership.metric", "membership.label_only", "extraction.equation", "extraction.learning",
    "extraction.tree_path", "evasion.constrained", "evasion.text", "evasion.image", "evasion.pgd",
    "evasion.transfer", "poisoning.feedback_loop", "poisoning.label_flip", "poisoning.backdoor",
    "poisoning.optimal_linear", "dos.load",
)

#: Which registered defence stands first for a countermeasure: the paper's own example first
#: (rounding confidence values), then the stronger or more general ones.
_DEFENCE_ORDER = (
    "confidence.round", "confidence.label_only", "confidence.top_k", "confidence.noise",
    "confidence.reverse_sigmoid", "confidence.truncate",
)

#: The input kinds an attack works on, for attacks that do not declare ``input_kinds`` themselves.
INPUT_KINDS: dict[str, tuple[str, ...]] = {
    "evasion.text": ("text",),
    "evasion.image": ("image",),
    **{name: ("tabular",) for name in (
        "evasion.constrained", "evasion.transfer", "extraction.equation", "extraction.tree_path",
        "inversion.attribute", "poisoning.feedback_loop", "poisoning.backdoor",
        "poisoning.optimal_linear")},
}

#: Defences that apply to neural (torch) models only.
NEURAL_ONLY = frozenset({"defensive_distillation"})


class Profile(BaseModel):
    """How much a scan does. ``overrides`` maps an attack parameter name to the value to use
    (applied only to attacks that have a parameter of that name); ``attack_params`` sets
    parameters of one named attack; ``only``, when not empty, restricts the scan to the attacks
    named there (``only_defences`` likewise for defences); ``unit_timeout`` stops a unit that runs longer (seconds of wall time; it is
    then reported as an error saying so)."""

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
    preference: tuple[str, ...] = _STRONG_FIRST
    defence_preference: tuple[str, ...] = _DEFENCE_ORDER
    overrides: dict[str, Any] = {}
    attack_params: dict[str, dict[str, Any]] = {}

    def params_for(self, attack_cls: type) -> dict[str, Any]:
        """The parameters this profile sets on ``attack_cls`` (a dataclass)."""
        import dataclasses

        names = (
            {f.name for f in dataclasses.fields(attack_cls)}
            if dataclasses.is_dataclass(attack_cls) else set()
        )
        params = {k: v for k, v in self.overrides.items() if k in names}
        params.update(self.attack_params.get(getattr(attack_cls, "name", ""), {}))
        return {k: v for k, v in params.items() if k in names}

    def rank(self, attack: str) -> tuple[int, str]:
        pref = self.preference
        return (pref.index(attack) if attack in pref else len(pref), attack)

    def rank_defence(self, defence: str) -> tuple[int, str]:
        pref = self.defence_preference
        return (pref.index(defence) if defence in pref else len(pref), defence)


PROFILES: dict[str, Profile] = {
    "quick": Profile(
        name="quick", budget=10_000, max_attacks=1, max_defences=1, combinations=0,
        max_victims=20, unit_timeout=20.0,
        preference=_CHEAP_FIRST,
        overrides={"n_reference": 4, "n_shadow": 2, "max_rounds": 6, "n_uniform": 500,
                   "max_victims": 50, "n_population": 250},
        attack_params={"extraction.learning": {"budget": 500, "rounds": 5}},
    ),
    "standard": Profile(
        name="standard", budget=25_000, max_attacks=2, max_defences=2, combinations=1,
        max_victims=100, unit_timeout=120.0,
        overrides={"n_reference": 8, "n_shadow": 4, "max_rounds": 8, "n_uniform": 1000,
                   "max_victims": 100},
        attack_params={"extraction.learning": {"budget": 1000}},
    ),
    "thorough": Profile(
        name="thorough", budget=200_000, max_attacks=99, max_defences=99, combinations=99,
        overrides={"n_reference": 64, "n_shadow": 8},
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
