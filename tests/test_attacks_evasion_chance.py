"""Evasion's no-model baseline on real models: random valid changes of the cost the attack spent.

A model whose boundary any affordable change crosses (the attack shows a fragile boundary, not
an advantage from model access) is rated on a lift near 0; German-credit boosting, where the
attack finds the few changes that work, keeps its level."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from finmlsec.attacks import AttackData, Labeled
from finmlsec.attacks.evasion import ConstrainedEvasion
from finmlsec.attacks.evasion_chance import CHANCE_NOISE, budgets, random_changes
from finmlsec.attacks.evasion_common import changes_and_cost, constraint_ok, feature_scales
from finmlsec.datasets import load
from finmlsec.scan.decide import risk_level
from finmlsec.schema import Feature, FeatureSchema, preprocessor
from finmlsec.targets.oracle import Oracle


def _fragile() -> tuple[object, AttackData]:
    """Approval on income + savings, two actionable fields that can only grow, with the same
    weight and spread (the data are symmetric in them): any change of a given cost raises the
    score by the same amount, so a random change of the attack's cost turns the victim too."""
    rng = np.random.default_rng(0)
    n = 500
    a, b = rng.normal(50, 10, n), rng.normal(50, 10, n)
    noise = rng.normal(0, 4, n)
    age = rng.integers(20, 70, n)
    X = pd.DataFrame({"age": np.concatenate([age, age]), "income": np.concatenate([a, b]),
                      "savings": np.concatenate([b, a])})
    y = np.concatenate([a + b + noise >= 100] * 2).astype(int)
    schema = FeatureSchema(features=(
        Feature(name="age", type="integer", min=18, max=90, immutable=True),
        Feature(name="income", type="numeric", min=0, max=300, monotone="increasing"),
        Feature(name="savings", type="numeric", min=0, max=300, monotone="increasing"),
    ), favourable_class="1")
    model = LogisticRegression(max_iter=5000, tol=1e-10).fit(X.iloc[::2], y[::2])
    held = X.iloc[1::2].reset_index(drop=True)
    victims = held[model.predict(held) == 0].reset_index(drop=True).iloc[:30]
    return model, AttackData(schema=schema, population=Labeled(X.iloc[::2], y[::2]),
                             victims=Labeled(victims))


def test_fragile_boundary_lift_near_zero_and_level_below_the_raw_rate() -> None:
    model, data = _fragile()
    r = ConstrainedEvasion(baseline_draws=50).run(Oracle(model, access="proba"), data)
    m = r.metrics
    assert m["n_victims"] == 30
    assert m["success_rate"] >= 0.9 and m["validity_rate"] == 1.0
    # a random valid change of the same cost turns most victims too
    assert m["baseline_rate"] >= 0.8
    assert m["lift"] <= 0.5 and r.success < 0.05
    assert risk_level(r.success) == "none" and risk_level(m["success_rate"]) == "high"
    assert any(n.startswith(CHANCE_NOISE) or "no better than random" in n for n in r.notes)
    # the paired counts add up: (b - c) / n is the raw rate minus the baseline
    assert (m["lift_b"] - m["lift_c"]) / m["n_victims"] == pytest.approx(
        m["success_rate"] - m["baseline_rate"])


@pytest.fixture(scope="module")
def credit() -> dict:
    ds = load("german_credit")
    train, test = ds.split(0.3, seed=0)
    gb = make_pipeline(preprocessor(ds.schema, categories="data", scale=False),
                       GradientBoostingClassifier(n_estimators=60, random_state=0)
                       ).fit(train.X, train.y)
    rejected = test.X[gb.predict(test.X) == 0].reset_index(drop=True).iloc[:30]
    data = AttackData(schema=ds.schema, population=Labeled(train.X, train.y),
                      victims=Labeled(rejected))
    return {"ds": ds, "gb": gb, "data": data}


def test_attack_beats_random_changes_on_credit_boosting(credit: dict) -> None:
    att = ConstrainedEvasion(target_class="good", baseline_draws=50)
    r = att.run(Oracle(credit["gb"], access="proba"), credit["data"])
    m = r.metrics
    assert m["success_rate"] >= 0.9
    assert m["baseline_rate"] <= 0.25  # the cheapest working change is rarely a random one
    assert m["lift"] >= 0.8 and m["lift_p"] < 0.05
    assert r.success == m["lift"] and risk_level(r.success) == "high"
    assert m["baseline_any_rate"] >= m["baseline_rate"] and m["baseline_draws"] == 50
    assert any(n.startswith("success is the lift over chance") for n in r.notes)
    # seeded: the same figures again
    again = att.run(Oracle(credit["gb"], access="proba"), credit["data"])
    assert again.metrics["baseline_rate"] == m["baseline_rate"] and again.success == r.success


def test_random_changes_are_valid_and_within_budget(credit: dict) -> None:
    schema, X0 = credit["ds"].schema, credit["data"].victims.X.iloc[:10]
    pop = credit["data"].population.X
    scale = feature_scales(schema, pop, X0)
    budget = np.linspace(0.2, 3.0, len(X0))
    Xr, owner = random_changes(schema, X0, budget, 40, 0, scale, pop)
    base = X0.iloc[owner].reset_index(drop=True)
    assert len(Xr) == 400 and constraint_ok(schema, base, Xr).all()
    changed, cost = changes_and_cost(schema, base, Xr, scale)
    assert (cost <= budget[owner] + 1e-6).all()
    # draws that can afford a category change do change something (smaller ones may round
    # every integer step to 0)
    assert (changed[budget[owner] >= 1.0] > 0).mean() > 0.9
    assert cost.mean() > 0.5 * budget[owner].mean()  # and spend most of the budget
    again, _ = random_changes(schema, X0, budget, 40, 0, scale, pop)
    pd.testing.assert_frame_equal(Xr, again)


def test_budgets_of_unchanged_victims_are_the_median_successful_cost() -> None:
    assert budgets(np.array([1.0, 0.0, 3.0, 0.0]), np.array([True, False, True, False])
                   ).tolist() == [1.0, 2.0, 3.0, 2.0]
    assert budgets(np.array([0.0]), np.array([False])).tolist() == [0.0]


def test_behind_an_input_screen_random_changes_must_pass_it_too(credit: dict) -> None:
    """A countermeasure's effect compares lifts: behind the screen, the attack's inputs and the
    random changes both count only when the screen accepts them."""
    from sklearn.base import clone

    from finmlsec.defences.input_screen import InputScreen
    from finmlsec.scan.work import through_screen
    from finmlsec.targets.base import as_target

    ds = credit["ds"]
    train, _ = ds.split(0.3, seed=0)
    data = credit["data"]
    screen = InputScreen(clone(credit["gb"]), schema=ds.schema, random_state=0).fit(
        train.X, train.y)
    att = ConstrainedEvasion(target_class="good", baseline_draws=50)
    behind = through_screen(att, Oracle(as_target(screen.estimator_), access="proba"), data,
                            screen)
    bare = att.run(Oracle(as_target(screen.estimator_), access="proba"), data)
    m = behind.metrics
    assert {"baseline_rate", "lift", "lift_p"} <= set(m)
    assert m["success_rate"] <= m["success_rate_unscreened"]
    assert m["baseline_rate"] <= bare.metrics["baseline_rate"]  # the screen only removes
    assert behind.success == (m["lift"] if m["lift_p"] < 0.05 else 0.0)
    assert any("lift over chance" in n or "random valid changes" in n for n in behind.notes)
