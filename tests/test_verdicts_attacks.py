"""Attacks on a user's own messy data: missing cells, free text, derived fields, direction."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from messy_loans import build_messy_system


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> object:
    from finmlsec.scenario import load_scenario

    paths = build_messy_system(tmp_path_factory.mktemp("loans"))
    return load_scenario(paths["spec"])


def _data(sc: object) -> object:
    from finmlsec.scan.work import ScanContext, attack_data_for

    return attack_data_for(sc, ScanContext(spec_path="unused"))


def test_evasion_moves_only_rejections_to_approval_and_keeps_frozen_missing_cells(
        scenario: object) -> None:
    from finmlsec.attacks.evasion import ConstrainedEvasion
    from finmlsec.targets.oracle import Oracle

    sc = scenario
    data = _data(sc)
    before = np.asarray(sc.target.predict(data.victims.X))
    res = ConstrainedEvasion(max_changes=3).run(Oracle(sc.target, budget=200_000), data)
    rejected = int(np.sum(before == "reject"))
    assert res.metrics["n_victims"] == rejected > 0  # only records decided against the applicant
    assert res.metrics["n_already_at_goal"] == len(before) - rejected
    assert any("favourable outcome approve" in n for n in res.notes)
    assert res.success > 0

    X0 = data.victims.X[before == "reject"].reset_index(drop=True)
    out = ConstrainedEvasion(max_changes=3).generate(
        Oracle(sc.target, budget=200_000), X0, None, sc.schema, population=data.population.X)
    adv = out.X_adv
    won = out.success & out.valid
    assert (np.asarray(sc.target.predict(adv))[won] == "approve").all()
    # a frozen field stays as it was, a missing cell included: no job title is invented
    na = X0["emp_title"].isna().to_numpy()
    assert na.any() and adv["emp_title"].isna().to_numpy()[na].all()
    assert (adv["emp_title"][~na] == X0["emp_title"][~na]).all()
    # the derived ratio follows its sources, and validity is checked on the records alone
    assert sc.schema.is_valid(adv).all()
    from finmlsec.attacks.evasion_common import constraint_ok

    assert constraint_ok(sc.schema, X0, adv)[won].all()
    forged = adv.copy()
    forged["emp_title"] = forged["emp_title"].fillna("zone manager")
    assert not constraint_ok(sc.schema, X0, forged)[na].any()


def test_without_a_favourable_class_the_note_says_both_directions_count(
        scenario: object) -> None:
    from finmlsec.attacks.evasion_common import goal_of
    from finmlsec.targets.oracle import Oracle

    sc = scenario
    schema = sc.schema.model_copy(update={"favourable_class": None})
    goal, notes = goal_of(None, Oracle(sc.target), schema)
    assert goal is None and "either direction" in notes[0]


@pytest.mark.parametrize("name", [
    "inversion.attribute", "extraction.equation", "extraction.learning",
    "membership.label_only", "membership.rmia", "poisoning.backdoor", "poisoning.label_flip",
    "poisoning.feedback_loop",
])
def test_attacks_run_on_missing_cells_and_free_text(scenario: object, name: str) -> None:
    from finmlsec.attacks import ATTACKS
    from finmlsec.scan.profiles import get_profile
    from finmlsec.targets.oracle import Oracle

    sc = scenario
    data = _data(sc)
    assert data.train.X.isna().any().any()
    cls = ATTACKS.get(name)
    params = get_profile("quick").params_for(cls)
    if "max_victims" in params:
        params["max_victims"] = 20
    res = cls(**params).run(Oracle(sc.target, budget=20_000), replace(
        data, victims=replace(data.victims, X=data.victims.X.iloc[:40].reset_index(drop=True),
                              y=data.victims.y[:40])))
    assert 0.0 <= res.success <= 1.0 and np.isfinite(res.success)




def test_attribute_inference_of_a_whole_number_field_with_missing_cells(
        scenario: object) -> None:
    """Seen on real credit data: a personal income of whole numbers with missing cells (read as
    float64, inferred as an integer field) stopped attribute inference with 'cannot convert
    float NaN to integer', in every unit. A missing value is no value to infer: the attack is
    scored on records that hold one."""
    from finmlsec.attacks import ATTACKS
    from finmlsec.targets.oracle import Oracle

    sc = scenario
    data = _data(sc)
    feats = tuple(f.model_copy(update={"type": "integer"}) if f.name == "annual_income" else f
                  for f in data.schema.features)
    schema = data.schema.model_copy(update={"features": feats})
    assert data.population.X["annual_income"].isna().any()
    res = ATTACKS.get("inversion.attribute")(max_victims=30, seed=1).run(
        Oracle(sc.target, budget=50_000), replace(data, schema=schema))
    m = res.metrics
    assert m["annual_income.members.victims"] == 30
    assert 0.0 <= m["annual_income.members.accuracy"] <= 1.0 and np.isfinite(res.success)
