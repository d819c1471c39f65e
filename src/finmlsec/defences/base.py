"""The countermeasure protocol.

A defence is a class registered in :data:`DEFENCES` with keyword parameters and class attributes:

* ``countermeasure``: the catalogue countermeasure id it implements (``modify_confidence``,
  ``pate``, ``modify_training_data``, ``detect_malicious_training_data``, ``robust_algorithm``,
  ``screen_false_prediction_data``, ``detect_malicious_input``, ``defensive_distillation``,
  ``adversarial_training``, ``gateway_rate_limiting``);
* ``counters``: the catalogue attack ids it is meant to weaken;
* ``stage``: where it acts: ``training_data`` (before fitting), ``training`` (the learning
  algorithm), ``output`` (what the operator returns), ``input`` (what the operator accepts),
  ``feedback`` (false-prediction data), ``gateway`` (request level);
* ``summary``: one line for listings.
* ``neural_only`` (optional, default False): it works on neural (torch) models only; the scan
  does not try it on others;
* ``rank`` (optional): its order among the defences implementing the same countermeasure (lower
  is tried first when a scan profile tries only some); unranked defences come after, by name.

``apply(estimator, X, y)`` takes an *unfitted* estimator and the training data, and returns a
*fitted* estimator with the defence in place (a meta-estimator for output defences, a model fitted
on cleaned or generalised data for data defences, ...). Output defences are scikit-learn
meta-estimators themselves, so one object serves a Pipeline, a scan and the gateway.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, runtime_checkable

from finmlsec.ids import COUNTERMEASURE_IDS
from finmlsec.registry import Registry

# The paper's countermeasure ids are defined once, in finmlsec.ids.
COUNTERMEASURES = COUNTERMEASURE_IDS

STAGES = ("training_data", "training", "output", "input", "feedback", "gateway")


@runtime_checkable
class Defence(Protocol):
    countermeasure: ClassVar[str]
    counters: ClassVar[frozenset[str]]
    stage: ClassVar[str]
    summary: ClassVar[str]

    def apply(self, estimator: Any, X: Any, y: Any) -> Any: ...


DEFENCES: Registry[type] = Registry("defence")
