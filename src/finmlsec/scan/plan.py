"""From the threat model to units of work.

:func:`make_plan` reads an analysis (the threats that apply to the spec's type), keeps them in
priority order, maps each threat to the registered attacks with the same ``(threat, via)`` and each
recommended countermeasure id to the registered defences and scanned serving guards that implement
it (:func:`finmlsec.defences.measured`), and lays out the
units of work: every selected attack on the system as it is, then under each defence and each
useful combination of two defences (acting at different stages; none for attacks that retrain
the model many times, those whose class declares ``retrains_victim``). Units are frozen values
with deterministic ids and seeds: a unit's seed depends only on the run's seed and on the attack
it runs, so an attack meets the defended model with the same seed it met the undefended one; the
defences' own seed depends only on the run's seed and the defences, so every attack of a threat
meets the same defended model. A profile with ``repeats`` > 1 runs every unit that many times
with other seeds (ids suffixed ``#2``, ``#3``): the spread between seeds is part of the test of
whether a countermeasure's effect is beyond noise (``finmlsec.scan.decide``).

Example:
    >>> from finmlsec.scan.plan import unit_seed
    >>> unit_seed(0, "infer_model@model_io/extraction.equation") == unit_seed(
    ...     0, "infer_model@model_io/extraction.equation")
    True
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict

from finmlsec.defences.base import STAGES
from finmlsec.errors import FinmlsecError
from finmlsec.scan.profiles import Profile

#: Where a defence that declares no ``rank`` stands among those of its countermeasure: after the
#: ranked ones (then by name).
UNRANKED = 1_000_000

#: Checks whether a registered attack class can run on the scanned system (None: yes; else why not).
AttackCheck = Callable[[type], "str | None"]


class Unit(BaseModel):
    """One independent piece of work: one attack, on the system as it is or under defences."""

    model_config = ConfigDict(frozen=True)

    id: str
    threat: str
    via: str
    attack: str
    params: dict[str, Any] = {}
    defences: tuple[str, ...] = ()
    countermeasures: tuple[str, ...] = ()
    access: str = "proba"
    budget: int | None = None
    max_victims: int | None = None
    timeout: float | None = None
    timeout_base: float | None = None
    #: fits of the model like the deployed one the unit makes, at most (:func:`fits_expected`)
    fits: float = 0.0
    #: CPU seconds of one such fit, measured when the scan was planned (None: not measured)
    fit_seconds: float | None = None
    seed: int = 0
    defence_seed: int = 0
    repeat: int = 0

    @property
    def baseline_id(self) -> str:
        return f"{self.threat}@{self.via}/{self.attack}" + (
            f"#{self.repeat + 1}" if self.repeat else "")


class PlannedThreat(BaseModel):
    """A threat of the analysis with what the scan will do about it."""

    model_config = ConfigDict(frozen=True)

    attack: str
    via: str
    priority: str
    countermeasures: tuple[str, ...]
    decision: str
    reason: str
    attacked: bool
    attacks: tuple[str, ...] = ()
    defences: dict[str, tuple[str, ...]] = {}
    notes: tuple[str, ...] = ()
    #: attacks that could run on this system but that the profile left out (it runs only its
    #: first ``max_attacks`` per threat): the measured risk is then a lower bound
    not_run: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.attack}@{self.via}"


class ScanPlan(BaseModel):
    """Everything a scan will run, in order."""

    model_config = ConfigDict(frozen=True)

    spec_name: str
    system_type: int | None
    profile: str
    seed: int
    threats: tuple[PlannedThreat, ...]
    units: tuple[Unit, ...]
    #: CPU seconds of one fit of the model like the deployed one on the training data, measured
    #: once when a planned unit retrains it (None: no unit does, no limits, or not measurable)
    fit_seconds: float | None = None


def unit_seed(seed: int, key: str) -> int:
    """A 31-bit seed derived from the run's seed and ``key`` (stable across processes)."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


#: The data size (rows x columns of the training data) up to which a profile's ``unit_timeout``
#: holds as it is; a larger data set scales it in proportion.
REFERENCE_CELLS = 20_000

#: A unit that trains the model like the deployed one gets at least this many times the CPU
#: time of the fits it makes (:func:`fits_expected`): room for the rest of its work and for fits
#: on a little more data than measured (the feedback loop's merged reports).
FIT_MARGIN = 2.0


def unit_limit(base: float | None, attack_cls: Any, cells: int | None,
               defended: bool = False, fits: float = 0.0,
               fit_seconds: float | None = None) -> float | None:
    """The CPU-time limit of one unit: the profile's ``base`` limit, scaled up in proportion to
    the data size beyond :data:`REFERENCE_CELLS` cells, by the attack's cost (``cost_rank`` / 2,
    at least 1) and doubled for a unit that first trains a defended model; or, when larger, the
    time of the unit's ``fits`` of the model like the deployed one at ``fit_seconds`` each
    (measured on this model), times :data:`FIT_MARGIN`. None: no limit.

    Example:
        >>> class Cheap:
        ...     cost_rank = 1
        >>> unit_limit(20.0, Cheap, 12_000), unit_limit(20.0, Cheap, 50_000 * 20)
        (20.0, 1000.0)
        >>> unit_limit(20.0, Cheap, 12_000, defended=True), unit_limit(None, Cheap, 10**9)
        (40.0, None)
        >>> # 256 fits of a model that takes 1.1 s to fit; a fast model keeps the base limit
        >>> unit_limit(20.0, Cheap, 12_000, True, 256, 1.1), unit_limit(20.0, Cheap, 12_000, True, 256, 0.01)
        (563.2, 40.0)
        >>> unit_limit(None, Cheap, 12_000, True, 256, 1.1) is None  # --unit-timeout 0: none
        True
    """
    if base is None:
        return None
    size = max(1.0, (cells or 0) / REFERENCE_CELLS)
    cost = max(1.0, int(getattr(attack_cls, "cost_rank", 1)) / 2)
    limit = base * size * cost * (2.0 if defended else 1.0)
    if fits and fit_seconds:
        limit = max(limit, fits * fit_seconds * FIT_MARGIN)
    return round(limit, 1)


def fits_expected(attack: Any, defences: tuple[Any, ...] = ()) -> float:
    """How many fits of the model like the deployed one a unit makes, at most, each counted as
    one on the training data: the defended model once (the product of the defences'
    ``fit_cost()``, innermost first; none without defences, or with a single output defence,
    which wraps the deployed model as it is) and the ``attack``'s own fits (its ``fits()``),
    each through the defences when the attack retrains the defended model
    (``retrains_victim``). ``attack`` and ``defences`` are instances; a feedback-stage defence
    runs inside the attack's loop, which counts it.

    Example:
        >>> from finmlsec.attacks import ATTACKS
        >>> from finmlsec.defences import DEFENCES
        >>> loop = ATTACKS.get("poisoning.feedback_loop")(max_rounds=6, n_targets=5)
        >>> bagging, rounding = DEFENCES.get("robust.bagging")(), DEFENCES.get("confidence.round")()
        >>> fits_expected(loop), fits_expected(loop, (bagging,)), fits_expected(loop, (rounding,))
        (18.0, 285.0, 18.0)
        >>> fits_expected(ATTACKS.get("evasion.constrained")(), (rounding,))
        0.0
    """
    trained = [d for d in defences if getattr(d, "stage", None) != "feedback"]
    through = 1.0
    for d in trained:
        cost = getattr(d, "fit_cost", None)
        through *= float(cost()) if callable(cost) else 1.0
    wraps_deployed = (len(trained) == 1 and getattr(trained[0], "stage", None) == "output"
                      and "prefit" in getattr(trained[0], "get_params", dict)())
    build = through if trained and not wraps_deployed else 0.0
    own = float(attack.fits(tuple(defences))) if callable(getattr(attack, "fits", None)) else 0.0
    return build + own * (through if getattr(attack, "retrains_victim", False) else 1.0)


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def threats_of(analysis: Any) -> list[dict[str, Any]]:
    """The analysis' threats as plain dicts, primary ones first (order kept otherwise)."""
    out = []
    for t in _get(analysis, "threats", []) or []:
        out.append({
            "attack": str(_get(t, "attack")),
            "via": str(_get(t, "via")),
            "priority": str(_get(t, "priority", "primary")),
            "countermeasures": tuple(str(c) for c in (_get(t, "countermeasures", ()) or ())),
            "decision": str(_get(t, "decision", "mitigate")),
            "reason": str(_get(t, "reason", "") or ""),
        })
    return sorted(out, key=lambda t: 0 if t["priority"] == "primary" else 1)


def _attack_params(cls: type, profile: Profile, seed: int) -> dict[str, Any]:
    params = profile.params_for(cls)
    names = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    for seed_name in ("random_state", "seed"):
        if seed_name in names:
            params[seed_name] = seed
    return params


def make_plan(
    analysis: Any,
    *,
    profile: Profile,
    seed: int = 0,
    include_accepted: bool = False,
    check: AttackCheck | None = None,
    access: Callable[[type], str] | None = None,
    spec_name: str = "",
    defence_check: Callable[[str], str | None] | None = None,
    data_cells: int | None = None,
    fit_seconds: Callable[[], float | None] | float | None = None,
) -> ScanPlan:
    """Plan a scan of ``analysis`` with the registered attacks and defences; ``data_cells``
    (rows x columns of the training data) and ``fit_seconds`` (CPU seconds of one fit of the
    model like the deployed one, or a function that measures it: called once, only when the
    units have time limits and some unit fits the model) scale the units' time limits
    (:func:`unit_limit`)."""
    from finmlsec.attacks import ATTACKS
    from finmlsec.defences import measured

    attacks: list[tuple[str, Any]] = ATTACKS.items()
    defences: list[tuple[str, Any]] = measured()  # the defences and the scanned guards
    classes: dict[str, Any] = dict(attacks)
    def_classes: dict[str, Any] = dict(defences)
    profile.check(attacks)
    threats: list[PlannedThreat] = []
    units: list[Unit] = []
    later: list[Unit] = []
    for t in threats_of(analysis):
        attacked = t["decision"] != "accept" or include_accepted
        notes: list[str] = []
        candidates = [n for n, c in attacks if c.threat == t["attack"] and c.via == t["via"]
                      and (not profile.only or n in profile.only)]
        usable = []
        for name in sorted(candidates, key=lambda n: profile.rank(classes[n])):
            why = check(classes[name]) if check else None
            if why:
                notes.append(f"{name} not run: {why}")
            else:
                usable.append(name)
        chosen = tuple(usable[: profile.max_attacks])
        left_out = tuple(usable[profile.max_attacks:])
        if left_out and attacked:
            notes.append(f"not run by the {profile.name} profile (it runs {profile.max_attacks} "
                         f"attack(s) per threat): {', '.join(left_out)}")
        if not candidates:
            notes.append(f"no registered attack realises {t['attack']} via {t['via']}")
        by_cm: dict[str, tuple[str, ...]] = {}
        for cm in t["countermeasures"]:
            names = sorted([
                n for n, c in defences
                if c.countermeasure == cm
                and (not getattr(c, "counters", None) or t["attack"] in c.counters)
                and (not profile.only_defences or n in profile.only_defences)
            ], key=lambda n: (getattr(def_classes[n], "rank", UNRANKED), n))
            for n in [n for n in names if defence_check and defence_check(n)]:
                notes.append(f"{n} not tried: {defence_check(n) if defence_check else ''}")
                names.remove(n)
            by_cm[cm] = tuple(names[: profile.max_defences])
            if not any(c.countermeasure == cm for _, c in defences):
                notes.append(f"no registered defence implements {cm}: the scan cannot measure "
                             "it (an organisational measure), and the residual risk does not "
                             "count it")
            elif not names:
                notes.append(f"no registered defence implements {cm} for this system")
        if not attacked:
            notes.append(f"accepted by the analysis, not attacked: {t['reason']}")
        pt = PlannedThreat(**t, attacked=attacked, attacks=chosen, defences=by_cm,
                           notes=tuple(notes), not_run=left_out if attacked else ())
        threats.append(pt)
        if not attacked:
            continue
        singles = [(d,) for cm in t["countermeasures"] for d in by_cm.get(cm, ())]
        # attacks that retrain the victim (many times, for the feedback loop) make the costliest
        # units: they get no combinations of defences, and their defended units start first
        retrains = any(classes[n].retrains_victim for n in chosen)
        stage = {n: STAGES.index(c.stage) if c.stage in STAGES else 0 for n, c in defences}
        combos = [
            tuple(sorted(pair, key=lambda n: stage[n]))
            for pair in itertools.combinations([s[0] for s in singles], 2)
            if stage[pair[0]] != stage[pair[1]]
        ][: 0 if retrains else profile.combinations]
        cm_of = {n: c.countermeasure for n, c in defences}
        for name, rep in itertools.product(chosen, range(profile.repeats)):
            cls: Any = ATTACKS.get(name)
            # the first repeat keeps the plain id and seed; the others run with other seeds
            tag = f"#{rep + 1}" if rep else ""
            key = f"{t['attack']}@{t['via']}/{name}"
            s = unit_seed(seed, key + tag)
            common = {
                "threat": t["attack"], "via": t["via"], "attack": name,
                "params": _attack_params(cls, profile, s), "budget": profile.budget, "seed": s,
                "max_victims": profile.max_victims, "timeout_base": profile.unit_timeout,
                "access": access(cls) if access else "proba", "repeat": rep,
            }
            attack = _instance(cls, common["params"])
            units.append(Unit(id=key + tag, **common, fits=_fits(attack, ())))
            for ds in singles + combos:
                later.append(Unit(
                    id=key + "+" + "+".join(ds) + tag, defences=ds,
                    defence_seed=unit_seed(seed, "+".join(ds) + tag),
                    countermeasures=tuple(cm_of[d] for d in ds), **common,
                    fits=_fits(attack, tuple(_instance(def_classes[d], {}) for d in ds)),
                ))
    # defended units of retraining threats first: they are the longest, started early they do
    # not make the tail of the scan (the sort is stable: plan order otherwise)
    planned = units + sorted(later, key=lambda u: not classes[u.attack].retrains_victim)
    secs = fit_seconds
    if callable(secs):
        fitting = profile.unit_timeout is not None and any(u.fits for u in planned)
        secs = secs() if fitting else None
    planned = [u.model_copy(update={
        "fit_seconds": secs if u.fits else None,
        "timeout": unit_limit(profile.unit_timeout, classes[u.attack], data_cells,
                              defended=bool(u.defences), fits=u.fits, fit_seconds=secs),
    }) for u in planned]
    return ScanPlan(
        spec_name=spec_name, system_type=_get(analysis, "type"), profile=profile.name, seed=seed,
        threats=tuple(threats), units=tuple(planned), fit_seconds=secs,
    )


def _instance(cls: Any, params: dict[str, Any]) -> Any:
    """``cls(**params)`` (an attack with a unit's parameters, a defence with its defaults, as the
    scan builds them), or None when it cannot be built here (the unit then says why)."""
    try:
        return cls(**params)
    except (TypeError, ValueError, FinmlsecError):
        return None


def _fits(attack: Any, defences: tuple[Any, ...]) -> float:
    if attack is None:
        return 0.0
    return fits_expected(attack, tuple(d for d in defences if d is not None))
