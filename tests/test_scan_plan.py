"""Planning a scan from a real analysis over the registered attacks and defences."""

from __future__ import annotations

import pytest

from finmlsec.attacks import ATTACKS
from finmlsec.defences import DEFENCES, measured_class
from finmlsec.errors import ConfigError
from finmlsec.scan import get_profile, make_plan
from finmlsec.scan.plan import threats_of
from finmlsec.spec import parse_spec
from finmlsec.threatmodel import analyze

CHATBOT = """
organisations: [{id: bank}, {id: vendor}, {id: customer}]
roles: {training_data_provider: bank, system_user: customer,
        model_generator: vendor, model_operator: bank}
stakes: {training_data: public}
"""
OFFICE = """
organisations: [{id: bank}, {id: vendor}]
roles: {training_data_provider: bank, system_user: bank,
        model_generator: vendor, model_operator: vendor}
stakes: {training_data: personal, model_value: high, harm_of_wrong_output: high}
"""


def _analysis(text: str):  # noqa: ANN202
    return analyze(parse_spec(text))


def test_only_applicable_threats_in_priority_order_and_accepted_ones_not_attacked() -> None:
    analysis = _analysis(CHATBOT)
    assert analysis.type == 4
    plan = make_plan(analysis, profile=get_profile("quick"), seed=0)
    keys = [(t.attack, t.via) for t in plan.threats]
    assert keys == [(t.attack, t.via) for t in analysis.threats]  # all primary for type 4
    accepted = [t for t in plan.threats if t.decision == "accept"]
    assert accepted and all(not t.attacked for t in accepted)
    assert all(t.reason and any("accepted by the analysis" in n for n in t.notes)
               for t in accepted)
    assert not {(u.threat, u.via) for u in plan.units} & {(t.attack, t.via) for t in accepted}
    everything = make_plan(analysis, profile=get_profile("quick"), seed=0, include_accepted=True)
    assert all(t.attacked for t in everything.threats)
    assert len(everything.units) >= len(plan.units)


def test_secondary_threats_come_after_primary_ones() -> None:
    analysis = _analysis(OFFICE)
    assert analysis.type == 7
    prios = [t["priority"] for t in threats_of(analysis)]
    assert "secondary" in prios
    assert prios == sorted(prios, key=lambda p: p != "primary")
    plan = make_plan(analysis, profile=get_profile("standard"), seed=0)
    assert [t.priority for t in plan.threats] == prios


@pytest.mark.parametrize("profile", ["quick", "standard", "thorough"])
def test_units_map_threats_to_attacks_and_countermeasures_to_defences(profile: str) -> None:
    prof = get_profile(profile)
    plan = make_plan(_analysis(OFFICE), profile=prof, seed=3)
    assert plan.units, "the registries hold attacks for a type 7 system"
    ids = [u.id for u in plan.units]
    assert len(ids) == len(set(ids))
    by_threat = {(t.attack, t.via): t for t in plan.threats}
    first_defended = next((i for i, u in enumerate(plan.units) if u.defences), len(ids))
    assert all(not u.defences for u in plan.units[:first_defended])  # baselines first
    for u in plan.units:
        cls = ATTACKS.get(u.attack)
        assert (cls.threat, cls.via) == (u.threat, u.via)
        t = by_threat[(u.threat, u.via)]
        assert u.attack in t.attacks and t.attacked
        assert u.budget == prof.budget
        for d, cm in zip(u.defences, u.countermeasures, strict=True):
            assert measured_class(d).countermeasure == cm and cm in t.countermeasures
        if len(u.defences) == 2:
            assert measured_class(u.defences[0]).stage != measured_class(u.defences[1]).stage
    for t in plan.threats:
        assert len(t.attacks) <= prof.max_attacks
        assert all(len(v) <= prof.max_defences for v in t.defences.values())


def test_seeds_are_deterministic_and_shared_by_an_attack_under_every_defence() -> None:
    analysis = _analysis(OFFICE)
    a = make_plan(analysis, profile=get_profile("standard"), seed=11)
    b = make_plan(analysis, profile=get_profile("standard"), seed=11)
    c = make_plan(analysis, profile=get_profile("standard"), seed=12)
    assert a == b
    assert [u.seed for u in a.units] != [u.seed for u in c.units]
    base = {u.id: u.seed for u in a.units if not u.defences}
    for u in a.units:
        assert u.seed == base[u.baseline_id]
        if "seed" in u.params:
            assert u.params["seed"] == u.seed


def test_quick_profile_prefers_cheap_attacks_and_the_papers_rounding() -> None:
    plan = make_plan(_analysis(OFFICE), profile=get_profile("quick"), seed=0)
    infer_model = next(t for t in plan.threats if t.attack == "infer_model")
    assert infer_model.attacks == ("extraction.equation",)
    assert infer_model.defences["modify_confidence"] == ("confidence.round",)
    assert all(len(u.defences) <= 1 for u in plan.units)  # no combinations in quick


def test_attacks_that_cannot_run_are_left_out_with_the_reason() -> None:
    def check(cls: type) -> str | None:
        return "needs probabilities" if "proba" in cls.needs else None

    plan = make_plan(_analysis(OFFICE), profile=get_profile("thorough"), seed=0, check=check)
    assert all("proba" not in ATTACKS.get(u.attack).needs for u in plan.units)
    notes = [n for t in plan.threats for n in t.notes]
    assert any("extraction.equation not run: needs probabilities" in n for n in notes)


def test_unknown_profile_is_refused() -> None:
    with pytest.raises(ConfigError, match="'profile' parameter of scan"):
        get_profile("fast")


def test_each_threat_gets_its_attacks_in_the_order_their_classes_declare() -> None:
    analysis = _analysis(OFFICE)
    for profile, rank in (("quick", "cost_rank"), ("thorough", "strength_rank")):
        plan = make_plan(analysis, profile=get_profile(profile), seed=0)
        for t in plan.threats:
            ranks = [getattr(ATTACKS.get(a), rank) for a in t.attacks]
            assert ranks == sorted(ranks), (profile, t.key, t.attacks)
    key = "infer_training_data@model_io"
    standard = make_plan(analysis, profile=get_profile("standard"), seed=0)
    assert next(t for t in standard.threats if t.key == key).attacks == (
        "membership.lira", "inversion.attribute")  # the strongest first
    quick = make_plan(analysis, profile=get_profile("quick"), seed=0)
    assert next(t for t in quick.threats if t.key == key).attacks == ("membership.metric",)


@pytest.mark.parametrize(("update", "message"), [
    ({"overrides": {"n_refrence": 4}},
     r"overrides 'n_refrence', a parameter no registered attack has; known parameters: .*"
     r"n_reference"),
    ({"attack_params": {"membership.lira": {"n_shadow": 2}}},
     r"sets 'n_shadow' on attack 'membership.lira', which has no such parameter; its "
     r"parameters: .*n_reference"),
    ({"attack_params": {"membership.lyra": {"n_reference": 2}}},
     r"names attack 'membership.lyra', which is not registered; known attacks: .*membership.lira"),
    ({"only": ("extraction.equations",)}, r"names attack 'extraction.equations'"),
])
def test_a_mistyped_profile_setting_is_an_error_naming_it(update: dict, message: str) -> None:
    profile = get_profile("standard").model_copy(update=update)
    with pytest.raises(ConfigError, match=message):
        make_plan(_analysis(OFFICE), profile=profile, seed=0)


def test_a_unit_parameter_the_attack_does_not_have_is_an_error_not_dropped() -> None:
    from finmlsec.scan.plan import Unit
    from finmlsec.scan.work import _attack

    unit = Unit(id="u", threat="infer_model", via="model_io", attack="extraction.equation",
                params={"n_uniform": 10})
    assert _attack(unit).n_uniform == 10
    with pytest.raises(ConfigError, match=r"no parameter\(s\) \['n_unifrom'\]; its parameters: "):
        _attack(unit.model_copy(update={"params": {"n_unifrom": 10}}))


def test_defences_of_a_countermeasure_come_in_the_order_their_classes_declare() -> None:
    plan = make_plan(_analysis(OFFICE), profile=get_profile("thorough"), seed=0)
    names = next(t for t in plan.threats if t.attack == "infer_model").defences[
        "modify_confidence"]
    assert names[:2] == ("confidence.round", "confidence.label_only")  # the paper's own first
    ranks = [DEFENCES.get(n).rank for n in names]
    assert ranks == sorted(ranks) and len(set(ranks)) == len(ranks)


def test_attacks_a_profile_leaves_out_are_recorded_so_the_risk_reads_as_a_lower_bound() -> None:
    from finmlsec.scan.decide import summarize

    quick = make_plan(_analysis(OFFICE), profile=get_profile("quick"), seed=0)
    thorough = make_plan(_analysis(OFFICE), profile=get_profile("thorough"), seed=0)
    q = next(t for t in quick.threats if t.attack == "infer_model")
    th = next(t for t in thorough.threats if t.attack == "infer_model")
    assert q.attacks == ("extraction.equation",)
    # every attack thorough runs that quick does not is named as left out, and vice versa none
    assert set(q.not_run) == set(th.attacks) - set(q.attacks) and q.not_run
    assert any("not run by the quick profile" in n for n in q.notes)
    assert not th.not_run
    # a quick measurement of 'none' is then a lower bound, not a clean pass
    plan = quick.model_dump(mode="json")
    unit = next(u for u in plan["units"]
                if u["threat"] == "infer_model" and not u["defences"])
    outcomes = {unit["id"]: {"status": "done", "utility": {"accuracy": 0.8}, "result": {
        "attack": unit["attack"], "success": 0.0, "metrics": {}, "queries": 10, "params": {}}}}
    t = next(t for t in summarize(plan, outcomes)["threats"] if t["attack"] == "infer_model")
    assert t["risk"] == "none"
    assert t["lower_bound"] and "extraction." in t["lower_bound"][0]
    assert "lower bound" in t["recommendation"]
