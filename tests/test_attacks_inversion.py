"""Attribute inference on German credit's personal fields, against a no-model baseline."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from finmlsec.attacks import ATTACKS, AttackData, Labeled
from finmlsec.datasets import load
from finmlsec.errors import CapabilityError, ConfigError
from finmlsec.schema import preprocessor
from finmlsec.targets.oracle import Oracle


@pytest.fixture(scope="module")
def credit() -> dict[str, Any]:
    ds = load("german_credit")
    schema = ds.schema
    assert schema is not None
    perm = np.random.default_rng(0).permutation(len(ds))
    tr, pop, non = perm[:400], perm[400:700], perm[700:]
    X, y = ds.X, np.asarray(ds.y)

    def lab(idx: np.ndarray) -> Labeled:
        return Labeled(X.iloc[idx].reset_index(drop=True), y[idx])

    def pipe(est: Any) -> Pipeline:
        prep = preprocessor(schema, categories="data")
        return Pipeline([("prep", prep), ("model", est)]).fit(lab(tr).X, lab(tr).y)

    return {
        "rf": pipe(RandomForestClassifier(n_estimators=60, random_state=0, n_jobs=1)),
        "lr": pipe(LogisticRegression(max_iter=2000)),
        "data": AttackData(schema=schema, population=lab(pop), members=lab(tr),
                           nonmembers=lab(non)),
    }


def test_overfit_forest_leaks_a_personal_attribute_of_its_members(credit: dict) -> None:
    r = ATTACKS.get("inversion.attribute")(attribute="personal_status_sex", max_victims=80).run(
        Oracle(credit["rf"]), credit["data"])
    m = r.metrics
    assert m["personal_status_sex.members.lift"] > 0.15
    assert m["personal_status_sex.members.accuracy"] > m["personal_status_sex.members.prior_accuracy"]
    assert r.success == pytest.approx(m["max_lift"]) and r.success > 0.15
    assert "lift beyond" in r.notes[0] and "(members)" in r.notes[0]
    # the same rule does not work on records the model never saw
    assert m["personal_status_sex.nonmembers.lift"] < 0.05
    assert r.queries == 2 * 80 * 4


def test_logistic_regression_is_reported_honestly_as_no_lift(credit: dict) -> None:
    r = ATTACKS.get("inversion.attribute")(attribute="personal_status_sex", max_victims=80,
                                           rule="bayes").run(Oracle(credit["lr"]), credit["data"])
    assert r.metrics["personal_status_sex.members.lift"] < 0.05
    assert r.success < 0.05
    assert all("not inferable beyond the no-model baseline" in n for n in r.notes)


def test_every_personal_field_within_the_budget(credit: dict) -> None:
    oracle = Oracle(credit["rf"], access="label", budget=700)
    r = ATTACKS.get("inversion.attribute")(max_victims=50).run(oracle, credit["data"])
    assert oracle.queries_used <= 700
    fields = {k.split(".")[0] for k in r.metrics if k.endswith(".lift")}
    assert fields == {f.name for f in credit["data"].schema.personal()}


def test_errors(credit: dict) -> None:
    with pytest.raises(ConfigError, match="'rule' parameter of AttributeInference"):
        ATTACKS.get("inversion.attribute")(rule="max").run(Oracle(credit["lr"]), credit["data"])
    with pytest.raises(CapabilityError, match="population"):
        ATTACKS.get("inversion.attribute")().run(Oracle(credit["lr"]),
                                                 AttackData(schema=credit["data"].schema))
    with pytest.raises(ConfigError, match="cannot cover one victim"):
        ATTACKS.get("inversion.attribute")().run(Oracle(credit["lr"], budget=5), credit["data"])
