"""Evasion attacks on real models: German-credit trees (constrained, transfer), an OCR network
(PGD) and the chatbot's intent classifier (text)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.pipeline import make_pipeline

from finmlsec.attacks import ATTACKS, AttackData, Labeled
from finmlsec.attacks.evasion import ConstrainedEvasion
from finmlsec.attacks.evasion_common import EvasionOutput, constraint_ok
from finmlsec.datasets import load
from finmlsec.errors import CapabilityError, ConfigError, DataError
from finmlsec.schema import Feature, FeatureSchema, preprocessor
from finmlsec.targets.oracle import Oracle


@pytest.fixture(scope="module")
def credit() -> dict:
    ds = load("german_credit")
    train, test = ds.split(0.3, seed=0)

    def pipe(est: object) -> object:
        enc = preprocessor(ds.schema, categories="data", scale=False)
        return make_pipeline(enc, est).fit(train.X, train.y)

    gb = pipe(GradientBoostingClassifier(n_estimators=60, random_state=0))
    rf = pipe(RandomForestClassifier(n_estimators=60, random_state=0, n_jobs=1))
    return {"ds": ds, "train": train, "test": test, "gb": gb, "rf": rf}


def _data(credit: dict, model: object, n: int = 40) -> AttackData:
    test = credit["test"]
    rejected = test.X[model.predict(test.X) == 0].reset_index(drop=True).iloc[:n]
    return AttackData(schema=credit["ds"].schema, population=Labeled(credit["train"].X,
                      credit["train"].y), victims=Labeled(rejected))


@pytest.mark.parametrize("model, access", [("gb", "proba"), ("rf", "label")])
def test_constrained_turns_rejected_into_approved_with_valid_minimal_changes(
    credit: dict, model: str, access: str
) -> None:
    target = credit[model]
    data = _data(credit, target)
    oracle = Oracle(target, access=access)
    att = ConstrainedEvasion(target_class="good")
    r = att.run(oracle, data)
    assert r.metrics["n_victims"] == len(data.victims.X) > 10
    assert r.metrics["success_rate"] >= 0.95
    assert r.metrics["validity_rate"] == 1.0
    assert r.metrics["median_features_changed"] <= 3
    assert r.queries == oracle.queries_used
    # the outputs themselves: approved by the real model, valid, immutable fields untouched
    out = att.generate(Oracle(target, access=access), data.victims.X, schema=data.schema,
                       population=data.population.X)
    assert (target.predict(out.X_adv)[out.success] == 1).all()
    credit["ds"].schema.check(out.X_adv)
    for f in credit["ds"].schema.features:
        if not f.mutable:
            assert (out.X_adv[f.name].astype(str) == data.victims.X[f.name].astype(str)).all()


def test_constrained_respects_budget_and_leaves_inputs(credit: dict) -> None:
    data = _data(credit, credit["gb"], n=10)
    before = data.victims.X.copy()
    oracle = Oracle(credit["gb"], budget=60)
    out = ConstrainedEvasion(target_class="good").generate(oracle, data.victims.X,
                                                           schema=data.schema)
    assert oracle.queries_used <= 60 and out.queries == oracle.queries_used
    assert out.valid.all()
    pd.testing.assert_frame_equal(before, data.victims.X)


def test_constrained_never_breaks_monotone_or_immutable_constraints() -> None:
    schema = FeatureSchema(features=(
        Feature(name="age", type="integer", min=18, max=90, monotone="increasing"),
        Feature(name="sex", type="categorical", categories=("f", "m"), immutable=True),
    ))
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"age": rng.integers(18, 90, 300), "sex": rng.choice(["f", "m"], 300)})
    y = ((X.age < 40) & (X.sex == "f")).astype(int)  # approval only when young and female
    from sklearn.tree import DecisionTreeClassifier

    enc = preprocessor(schema, categories="data", scale=False)
    model = make_pipeline(enc, DecisionTreeClassifier(random_state=0)).fit(X, y)
    victims = pd.DataFrame({"age": [60, 30, 70], "sex": ["f", "m", "m"]})
    out = ConstrainedEvasion(target_class=1).generate(Oracle(model), victims, schema=schema)
    assert not out.success.any()  # impossible without getting younger or changing sex
    assert out.valid.all()
    assert constraint_ok(schema, victims, out.X_adv).all()
    assert (out.X_adv.age >= victims.age).all() and (out.X_adv.sex == victims.sex).all()


def test_constrained_generate_contract_and_errors(credit: dict) -> None:
    X = credit["test"].X.iloc[:6].reset_index(drop=True)
    oracle = Oracle(credit["gb"])
    out = ATTACKS.get("evasion.constrained")(target_class="good").generate(
        oracle, X, schema=credit["ds"].schema)
    assert isinstance(out, EvasionOutput) and len(out.success) == 6 and out.valid.all()
    already = credit["gb"].predict(X) == 1
    pd.testing.assert_frame_equal(out.X_adv[already].reset_index(drop=True),
                                  X[already].reset_index(drop=True), check_dtype=False)
    with pytest.raises(DataError, match="DataFrame"):
        ConstrainedEvasion().generate(oracle, np.zeros((2, 20)))
    with pytest.raises(ConfigError, match="'max_changes' parameter of ConstrainedEvasion"):
        ConstrainedEvasion(max_changes=0).generate(oracle, X)
    with pytest.raises(ConfigError, match="'target_class' parameter"):
        ConstrainedEvasion(target_class="excellent").generate(oracle, X, schema=credit["ds"].schema)
    with pytest.raises(CapabilityError, match="victims"):
        ConstrainedEvasion().run(oracle, AttackData(schema=credit["ds"].schema))


def test_transfer_through_stolen_surrogate(credit: dict) -> None:
    target = credit["rf"]
    data = _data(credit, target, n=30)
    oracle = Oracle(target, access="label")
    att = ATTACKS.get("evasion.transfer")(target_class="good", n_seed=200, rounds=1)
    r = att.run(oracle, data)
    n = r.metrics["n_victims"]
    assert r.metrics["validity_rate"] == 1.0
    assert r.metrics["success_rate"] >= 0.5
    # queries: the first decision on each victim, the stolen set, one replay per victim
    assert r.queries == n + r.metrics["stolen_records"] + n


def test_constrained_refuses_invalid_victims(credit: dict) -> None:
    X = credit["test"].X.iloc[:3].copy()
    X.loc[X.index[0], "purpose"] = "yacht"
    with pytest.raises(DataError, match="'purpose'.*not among the categories"):
        ConstrainedEvasion().generate(Oracle(credit["gb"]), X, schema=credit["ds"].schema)
    with pytest.raises(DataError, match=r"missing column\(s\) \['age'\]"):
        ConstrainedEvasion().generate(Oracle(credit["gb"]), X.drop(columns=["age"]),
                                      schema=credit["ds"].schema)


def test_transfer_on_a_model_that_decides_alike_for_everyone_says_so(credit: dict) -> None:
    """A countermeasure can leave a model answering one class to every record; the transfer
    attack then has nothing to copy and says why, not only "give more records"."""
    from sklearn.dummy import DummyClassifier

    ds = credit["ds"]
    const = make_pipeline(preprocessor(ds.schema), DummyClassifier(strategy="most_frequent"))
    const.fit(credit["train"].X, credit["train"].y)
    with pytest.raises(DataError, match=r"answered \S+ to all \d+ records queried.*decides "
                                        r"alike for everyone"):
        ATTACKS.get("evasion.transfer")(n_seed=50, rounds=1).generate(
            Oracle(const, access="label"), credit["test"].X.iloc[:5], schema=ds.schema,
            population=credit["test"].X)
