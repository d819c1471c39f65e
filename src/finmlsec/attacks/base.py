"""The attack base class, what an attack may know, and what it reports.

An attack is a subclass of :class:`Attack` registered in :data:`ATTACKS`; its parameters are
keyword-only dataclass fields (no work in the constructor). It implements
``_attack(oracle, data, meter) -> Outcome``; the inherited ``run(oracle, data)`` checks the
parameters and the needs, times the attack, counts its queries and returns an
:class:`AttackResult`. Adding an attack is one new module in this package (it is imported with the
package) plus its tests: the scan, the CLI and the contract suite read everything from the class.

Class attributes every attack declares:

* ``name``: the registered name;
* ``threat``: the catalogue attack id it realises (``infer_training_data``, ``infer_model``,
  ``generate_malicious_model``, ``induce_false_prediction``, ``dos_model_operator``, ...);
* ``via``: the data it goes through (``training_data``, ``model_io``, ``false_prediction_data``);
* ``needs``: oracle-side needs (``proba``, ``label``, ``gradient``, ``white_box``, ``rounded``)
  and data-side needs (``population``, ``model_factory``, ``train``, ``schema``, ``members``,
  ``nonmembers``, ``test``, ``victims``, ``endpoint``), checked by :func:`check_needs` before
  the first query;
* ``atlas`` / ``owasp``: cross-reference ids (MITRE ATLAS, OWASP ML Top 10);
* ``summary``: one line for ``finmlsec attack list``;
* ``input_kinds``, ``cost_rank``, ``strength_rank`` and the capabilities ``generates``,
  ``retrains_victim`` and ``reads_training_data``: see :class:`Attack`;
* ``fits(defences)``: how many times it trains the model like the deployed one
  (``model_factory``) with its parameters, at most; 0 for an attack that never does (the
  default). The scan's unit time limits grow with it (:func:`finmlsec.scan.plan.unit_limit`).

Optional conventions:

* ``contract_fixture()`` (classmethod): a dict with any of ``params``, ``target``, ``access``,
  ``input_kind``, ``data`` giving the common contract suite (``tests/test_attack_contract.py``) a
  fast set-up for an attack whose defaults are slow or need special inputs;
* ``data.extra["progress"]``: a callable ``(done, total)`` an attack calls as it advances (e.g. per
  reference model trained); the CLI and the scan use it for progress bars;
* evaluator-side measurements (fidelity on test and uniform data) call ``oracle.target`` directly:
  they score the result and are not charged to the attacker's budget.

Example:
    >>> from typing import ClassVar
    >>> class Constant(Attack):
    ...     '''Reports a fixed success (an example, not registered).'''
    ...     name: ClassVar[str] = "example.constant"
    ...     threat: ClassVar[str] = "infer_model"
    ...     via: ClassVar[str] = "model_io"
    ...     needs: ClassVar[frozenset[str]] = frozenset({"label"})
    ...     summary: ClassVar[str] = "an example"
    ...     input_kinds: ClassVar[tuple[str, ...]] = INPUT_KINDS
    ...     cost_rank: ClassVar[int] = 0
    ...     strength_rank: ClassVar[int] = 0
    ...     level: float = 0.5
    ...     def _attack(self, oracle, data, meter):
    ...         return Outcome(success=self.level, metrics={"level": self.level})
    >>> Constant(level=0.25).run(None, AttackData()).success
    0.25
    >>> Constant(0.25)
    Traceback (most recent call last):
    ...
    TypeError: Constant.__init__() takes 1 positional argument but 2 were given
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, dataclass_transform, get_args

import numpy as np

from finmlsec.errors import CapabilityError
from finmlsec.registry import Registry
from finmlsec.schema import FeatureSchema, InputKind
from finmlsec.targets.oracle import Oracle


@dataclass(frozen=True)
class Labeled:
    """Inputs and their integer labels (labels may be None where unknown to the attacker)."""

    X: Any
    y: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.X.shape[0]) if hasattr(self.X, "shape") else len(self.X)


@dataclass(frozen=True)
class AttackData:
    """Everything an attack may use, split into the attacker's knowledge and the evaluator's truth.

    Attacker's knowledge: ``population`` (records from the target's distribution whose membership
    the attacker does not know; may overlap the training data in the standard threat model),
    ``model_factory`` (returns an unfitted model trained like the target: the attacker knows the
    algorithm), ``train`` (the training data, for attacks that reach it directly: poisoning),
    ``schema``, ``victims`` (records the attacker wants to affect: rejected applicants to turn,
    the target profile of a feedback attack), ``endpoint`` (URL of an HTTP target for DoS).

    Evaluator's truth (never used by an attack's decisions, only to score them): ``members`` and
    ``nonmembers`` (membership ground truth), ``test`` (held-out data for fidelity and utility).
    """

    schema: FeatureSchema | None = None
    population: Labeled | None = None
    model_factory: Callable[[], Any] | None = None
    train: Labeled | None = None
    victims: Labeled | None = None
    endpoint: str | None = None
    members: Labeled | None = None
    nonmembers: Labeled | None = None
    test: Labeled | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    return v


@dataclass(frozen=True)
class AttackResult:
    """The measured outcome of one attack run.

    ``success`` is the headline figure in [0, 1] that risk decisions use (membership: AUC rescaled
    as advantage; extraction: the fidelity lift over the no-model copy, 0 when that lift is
    within noise, see :func:`~finmlsec.attacks.extraction_common.theft_success`; evasion: the
    lift of the success rate among valid inputs over random valid changes of the same cost, 0
    when within noise, see :mod:`~finmlsec.attacks.evasion_chance`; poisoning: accuracy drop or targeted success; inversion: lift over
    the baseline, clipped at 0).
    ``metrics`` holds all figures, ``curves`` named series (e.g. ``roc``: {fpr, tpr}).
    """

    attack: str
    threat: str
    via: str
    success: float
    metrics: dict[str, float]
    queries: int
    seconds: float
    params: dict[str, Any] = field(default_factory=dict)
    curves: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    #: structured findings beyond figures (membership: ``exposure``, the most exposed records)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "attack": self.attack,
            "threat": self.threat,
            "via": self.via,
            "success": _jsonable(self.success),
            "metrics": _jsonable(dict(sorted(self.metrics.items()))),
            "queries": self.queries,
            "seconds": self.seconds,
            "params": _jsonable(self.params),
            "curves": _jsonable(self.curves),
            "notes": list(self.notes),
            "details": _jsonable(self.details),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=False, indent=2)


ATTACKS: Registry[type] = Registry("attack")

ORACLE_NEEDS = frozenset({"proba", "label", "gradient", "white_box", "rounded"})
DATA_NEEDS = frozenset(
    {"population", "model_factory", "train", "schema", "members", "nonmembers", "test",
     "victims", "endpoint"}
)


def check_needs(attack: Any, oracle: Oracle | None, data: AttackData) -> None:
    """Raise :class:`CapabilityError` before the first query if the oracle or the data lack
    something the attack needs (``attack.required()`` for an :class:`Attack`, else its
    ``needs``); the message names the registered attacks that would fit what is available."""
    needs = set(attack.required() if isinstance(attack, Attack) else attack.needs)
    name = getattr(attack, "name", type(attack).__name__)
    if oracle is not None:
        try:
            oracle.require(needs & ORACLE_NEEDS, who=f"attack {name!r}")
        except CapabilityError as exc:
            fits = [
                n for n, cls in ATTACKS.items()
                if set(getattr(cls, "needs", ())) & ORACLE_NEEDS <= oracle.provides
                and getattr(cls, "threat", None) == attack.threat
            ]
            hint = f"; attacks for the same threat that fit: {', '.join(fits)}" if fits else ""
            raise CapabilityError(f"{exc}{hint}") from None
    missing = sorted(n for n in needs & DATA_NEEDS if getattr(data, n) is None)
    if missing:
        raise CapabilityError(f"attack {name!r} needs data {missing} that were not provided")


def params_of(attack: Any) -> dict[str, Any]:
    """An attack's parameters as a JSON-able dict (its dataclass fields)."""
    if dataclasses.is_dataclass(attack):
        return _jsonable({f.name: getattr(attack, f.name) for f in dataclasses.fields(attack)})
    return {}


#: The kinds of input an attack can work on (the values of a target's ``input_kind``).
INPUT_KINDS: tuple[str, ...] = get_args(InputKind)


@dataclass(frozen=True)
class Outcome:
    """What an attack measured; :meth:`Attack.run` adds who ran, queries, time and parameters.

    ``params`` replaces the attack's own parameters in the result where it reports them
    differently (e.g. a component by name); ``queries`` is for an attack that queries something
    other than the oracle (DoS requests): by default the result's queries are the oracle's.
    """

    success: float
    metrics: dict[str, float]
    curves: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    params: dict[str, Any] | None = None
    queries: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


class Meter:
    """Oracle queries and wall time spent since the run started (for per-victim figures)."""

    def __init__(self, oracle: Oracle | None) -> None:
        self._oracle = oracle
        self._q0 = oracle.queries_used if oracle is not None else 0
        self._t0 = time.perf_counter()

    @property
    def queries(self) -> int:
        return self._oracle.queries_used - self._q0 if self._oracle is not None else 0

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self._t0


@dataclass_transform(kw_only_default=True)
class Attack:
    """Base of every attack: keyword-only parameters, metadata on the class, one ``run``.

    A subclass is made a keyword-only dataclass when it is defined (no decorator needed), declares
    the class attributes below and implements :meth:`_attack`; :meth:`run` checks the parameters
    (:meth:`_validate`) and the needs (:func:`check_needs`, before the first query), times the
    attack, counts its oracle queries and builds the :class:`AttackResult`.

    Metadata (class attributes) the scan and the CLI read:

    * ``name``, ``threat``, ``via``, ``needs``, ``atlas``, ``owasp``, ``summary``: see the module
      docstring;
    * ``input_kinds``: the target input kinds it works on (a subset of :data:`INPUT_KINDS`);
    * ``cost_rank`` / ``strength_rank``: its place among the attacks for the same threat and data
      (lower runs first): cheapest first for the quick scan profile, strongest first otherwise;
    * ``generates``: it crafts adversarial inputs with ``generate(oracle, X, y, schema)`` (an
      input screen can then be measured against what it crafts);
    * ``retrains_victim``: it trains the victim's model itself through ``model_factory``
      (poisoning): under a training-side defence it must train through the defended pipeline;
    * ``reads_training_data``: it reads the training data as the data owner shares them
      (``data.train``; linkage): under a training-data defence it gets the data as that
      defence releases them (``release``), with ``extra["released_rows"]`` saying which member
      each released record came from (evaluator side).
    """

    name: ClassVar[str]
    threat: ClassVar[str]
    via: ClassVar[str]
    needs: ClassVar[frozenset[str]]
    atlas: ClassVar[tuple[str, ...]] = ()
    owasp: ClassVar[tuple[str, ...]] = ()
    summary: ClassVar[str]
    input_kinds: ClassVar[tuple[str, ...]]
    cost_rank: ClassVar[int]
    strength_rank: ClassVar[int]
    generates: ClassVar[bool] = False
    retrains_victim: ClassVar[bool] = False
    reads_training_data: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        dataclass(kw_only=True)(cls)

    def fits(self, defences: tuple[Any, ...] = ()) -> float:
        """How many times the attack, as configured, trains the model like the deployed one
        (``data.model_factory``) at most, each fit counted as one on the training data; with
        ``defences``, the unit's defence instances (a feedback screen the attack runs in its
        loop adds its own fits). 0: it never does (the default); the scan scales a unit's time
        limit with it (:func:`finmlsec.scan.plan.fits_expected`)."""
        return 0.0

    def required(self) -> frozenset[str]:
        """The needs of the attack as configured (more than ``needs`` where a parameter asks for
        more, e.g. a calibration that trains reference models)."""
        return self.needs

    def _validate(self) -> None:
        """Check the parameters (raise ConfigError); called by :meth:`run` before anything."""

    def _attack(self, oracle: Any, data: AttackData, meter: Meter) -> Outcome:
        raise NotImplementedError(f"{type(self).__name__} implements no _attack")

    def run(self, oracle: Any, data: AttackData) -> AttackResult:
        """Run the attack through ``oracle`` (None for an attack that queries no model) on
        ``data``; raise CapabilityError before the first query if either lacks a need."""
        self._validate()
        check_needs(self, oracle, data)
        meter = Meter(oracle)
        out = self._attack(oracle, data, meter)
        return AttackResult(
            attack=self.name, threat=self.threat, via=self.via, success=float(out.success),
            metrics=out.metrics, queries=meter.queries if out.queries is None else out.queries,
            seconds=meter.seconds, params=params_of(self) if out.params is None else out.params,
            curves=out.curves, notes=tuple(out.notes), details=dict(out.details),
        )
