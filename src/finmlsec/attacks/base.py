"""The attack protocol, what an attack may know, and what it reports.

An attack is a class registered in :data:`ATTACKS` whose parameters are keyword fields (a
dataclass; no work in the constructor). ``run(oracle, data)`` returns an :class:`AttackResult`.

Class attributes every attack declares:

* ``threat``: the catalogue attack id it realises (``infer_training_data``, ``infer_model``,
  ``generate_malicious_model``, ``induce_false_prediction``, ``dos_model_operator``, ...);
* ``via``: the data it goes through (``training_data``, ``model_io``, ``false_prediction_data``);
* ``needs``: oracle-side needs (``proba``, ``label``, ``gradient``, ``white_box``) and data-side
  needs (``population``, ``model_factory``, ``train``, ``schema``, ``members``, ``test``,
  ``victims``, ``endpoint``), checked by :func:`check_needs` before the first query;
* ``atlas`` / ``owasp``: cross-reference ids (MITRE ATLAS, OWASP ML Top 10);
* ``summary``: one line for ``finmlsec attack list``.

Optional conventions:

* ``contract_fixture()`` (classmethod): a dict with any of ``params``, ``target``, ``access``,
  ``input_kind``, ``data`` giving the common contract suite (``tests/test_attack_contract.py``) a
  fast set-up for an attack whose defaults are slow or need special inputs;
* ``data.extra["progress"]``: a callable ``(done, total)`` an attack calls as it advances (e.g. per
  reference model trained); the CLI and the scan use it for progress bars;
* evaluator-side measurements (fidelity on test and uniform data) call ``oracle.target`` directly:
  they score the result and are not charged to the attacker's budget.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from finmlsec.datasets.schema import FeatureSchema
from finmlsec.errors import CapabilityError
from finmlsec.registry import Registry
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
    as advantage; extraction: fidelity; evasion: success rate among valid inputs; poisoning:
    accuracy drop or targeted success; inversion: lift over the baseline, clipped at 0).
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
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=False, indent=2)


@runtime_checkable
class Attack(Protocol):
    name: ClassVar[str]
    threat: ClassVar[str]
    via: ClassVar[str]
    needs: ClassVar[frozenset[str]]
    atlas: ClassVar[tuple[str, ...]]
    owasp: ClassVar[tuple[str, ...]]
    summary: ClassVar[str]

    def run(self, oracle: Oracle, data: AttackData) -> AttackResult: ...


ATTACKS: Registry[type] = Registry("attack")

ORACLE_NEEDS = frozenset({"proba", "label", "gradient", "white_box", "rounded"})
DATA_NEEDS = frozenset(
    {"population", "model_factory", "train", "schema", "members", "nonmembers", "test",
     "victims", "endpoint"}
)


def check_needs(attack: Any, oracle: Oracle | None, data: AttackData) -> None:
    """Raise :class:`CapabilityError` before the first query if the oracle or the data lack
    something the attack declares in ``needs``; the message names the registered attacks that
    would fit what is available."""
    needs = set(attack.needs)
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
