"""The scan's estimate of the time left, tested on the unit times a quick scan of the messy loan
system recorded (serial, in plan order: the cheap undefended units first)."""

from __future__ import annotations

import pytest

from finmlsec.scan.plan import Unit
from finmlsec.scan.progress import CostModel, ScanProgress

RECORDED = [  # unit id, seconds
    ("generate_malicious_model@training_data/poisoning.label_flip", 0.434),
    ("infer_model@model_io/extraction.equation", 0.521),
    ("induce_false_prediction@model_io/evasion.constrained", 1.048),
    ("infer_training_data@model_io/membership.metric", 0.306),
    ("generate_malicious_model@false_prediction_data/poisoning.feedback_loop", 2.009),
    ("generate_malicious_model@training_data/poisoning.label_flip+poison_filter", 6.182),
    ("generate_malicious_model@training_data/poisoning.label_flip+robust.bagging", 8.08),
    ("generate_malicious_model@false_prediction_data/poisoning.feedback_loop+feedback_screen",
     6.139),
    ("generate_malicious_model@false_prediction_data/poisoning.feedback_loop+robust.bagging",
     21.963),
    ("infer_model@model_io/extraction.equation+confidence.round", 0.665),
    ("induce_false_prediction@model_io/evasion.constrained+input_screen", 2.499),
    ("induce_false_prediction@model_io/evasion.constrained+adversarial_training", 5.723),
    ("infer_training_data@model_io/membership.metric+confidence.round", 0.43),
    ("infer_training_data@model_io/membership.metric+pate", 0.738),
]


def _unit(uid: str) -> Unit:
    head, _, attack = uid.partition("/")
    threat, via = head.split("@")
    attack, *defences = attack.split("+")
    return Unit(id=uid, threat=threat, via=via, attack=attack, defences=tuple(defences))


def _replay() -> list[tuple[float, float, float]]:
    """(new estimate, old estimate, true time left) after each finished unit."""
    units = [_unit(uid) for uid, _ in RECORDED]
    p = ScanProgress(enabled=False)
    p.start(len(units), 0, units)
    out = []
    for i, (u, (_, secs)) in enumerate(zip(units, RECORDED, strict=True)):
        p.unit_started(u)
        p.unit_done(u, {"status": "done", "seconds": secs})
        truth = sum(s for _, s in RECORDED[i + 1:])
        old = sum(p.durations) / len(p.durations) * (len(units) - i - 1)
        out.append((p.eta() or 0.0, old, truth))
    return out


def test_the_estimate_after_the_cheap_units_is_within_a_factor_two() -> None:
    steps = _replay()
    new, old, truth = steps[4]  # every undefended unit done, every defended one to come
    assert truth == pytest.approx(52.42, abs=0.01)
    assert old < truth / 4  # the mean of the cheap units: 7.7 s for 52 s left
    assert truth / 2 <= new <= 2 * truth
    for new, _, truth in steps[4:-1]:  # from then on within a factor two (or 5 s at the end)
        assert truth / 2 - 5 <= new <= 2 * truth + 5, (new, truth)
    assert steps[-1][0] == 0.0


def test_measured_defence_ratios_replace_the_stage_priors() -> None:
    base = _unit("t@v/evasion.constrained")
    bag = _unit("t@v/evasion.constrained+robust.bagging")
    other = _unit("u@v/membership.metric")
    other_bag = _unit("u@v/membership.metric+robust.bagging")
    m = CostModel([base, bag, other, other_bag])
    m.record(base, 1.0)
    m.record(other, 0.5)
    assert m.predict(other_bag) == pytest.approx(0.5 * 8.0)  # training stage prior
    m.record(bag, 20.0)  # bagging measured at 20 times its attack's undefended time
    assert m.predict(other_bag) == pytest.approx(0.5 * 20.0)
    # running units count what is left of them
    assert m.remaining([], {other_bag.id: 4.0}) == pytest.approx(6.0)
    assert m.remaining([other_bag], slots=2) == pytest.approx(5.0)
