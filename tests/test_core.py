"""Core protocols: registry, feature schema, oracle, metrics, attack needs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from finmlsec import metrics
from finmlsec.attacks.base import AttackData, check_needs
from finmlsec.errors import (
    BudgetExceededError,
    CapabilityError,
    ConfigError,
    DataError,
    RegistryError,
)
from finmlsec.registry import Registry
from finmlsec.schema import Feature, FeatureSchema
from finmlsec.targets.oracle import Oracle

SCHEMA = FeatureSchema(
    features=(
        Feature(name="age", type="integer", min=18, max=75, immutable=True, personal=True),
        Feature(name="amount", type="numeric", min=0, max=20000),
        Feature(name="purpose", type="categorical", categories=("car", "education", "tv")),
    )
)


def test_registry_unknown_name_suggests_and_lists() -> None:
    reg: Registry[int] = Registry("thing")
    reg.register("membership.lira")(1)
    with pytest.raises(RegistryError,
                       match="did you mean .membership.lira.*choose one of: .*membership.lira"):
        reg.get("membership.lra")
    with pytest.raises(RegistryError, match="registered twice"):
        reg.register("membership.lira")(2)


@pytest.mark.parametrize(
    "frame, message",
    [
        (pd.DataFrame({"age": [30], "amount": [10.0]}), "missing column"),
        (
            pd.DataFrame({"age": [30], "amount": [1.0], "purpose": ["car"], "x": [1]}),
            "unknown column",
        ),
        (pd.DataFrame({"age": [30.5], "amount": [1.0], "purpose": ["car"]}), "whole numbers"),
        (pd.DataFrame({"age": [30], "amount": [np.nan], "purpose": ["car"]}), "missing value"),
        (pd.DataFrame({"age": [30], "amount": [np.inf], "purpose": ["car"]}), "infinite"),
        (pd.DataFrame({"age": [30], "amount": [1e9], "purpose": ["car"]}), "above the maximum"),
        (pd.DataFrame({"age": [30], "amount": [1.0], "purpose": ["boat"]}), "not among"),
        (pd.DataFrame({"age": ["old"], "amount": [1.0], "purpose": ["car"]}), "expected integer"),
    ],
)
def test_schema_validate_names_the_problem(frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(DataError, match=message):
        SCHEMA.check(frame)


def test_schema_sampling_is_valid_and_seeded() -> None:
    a = SCHEMA.sample_uniform(500, 7)
    b = SCHEMA.sample_uniform(500, 7)
    pd.testing.assert_frame_equal(a, b)
    SCHEMA.check(a)
    assert SCHEMA.is_valid(a).all()
    bad = a.copy()
    bad.loc[0, "age"] = 200
    bad.loc[1, "purpose"] = "boat"
    mask = SCHEMA.is_valid(bad)
    assert not mask[0] and not mask[1] and mask[2:].all()
    fixed = SCHEMA.project(bad.assign(purpose=a.purpose))
    assert SCHEMA.is_valid(fixed).all() and fixed.loc[0, "age"] == 75


def _fitted() -> tuple[LogisticRegression, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    return LogisticRegression().fit(X, y), X


def test_oracle_counts_and_refuses_over_budget_before_querying() -> None:
    model, X = _fitted()
    oracle = Oracle(model, access="proba", budget=10, input_kind="image")
    oracle.predict_proba(X[:6])
    with pytest.raises(BudgetExceededError, match="6 of 10 used, 5 more"):
        oracle.predict(X[:5])
    assert oracle.queries_used == 6 and oracle.remaining == 4
    oracle.predict(X[:4])
    assert oracle.remaining == 0


def test_oracle_access_levels() -> None:
    model, X = _fitted()
    rounded = Oracle(model, access="rounded", decimals=1, input_kind="image").predict_proba(X[:20])
    assert np.allclose(rounded, np.round(rounded, 1))
    full = Oracle(model, input_kind="image").predict_proba(X[:20])
    assert not np.allclose(full, np.round(full, 1))
    label = Oracle(model, access="label", input_kind="image")
    with pytest.raises(CapabilityError, match="labels only"):
        label.predict_proba(X[:1])
    with pytest.raises(CapabilityError, match="white_box"):
        Oracle(model, input_kind="image").gradient(X[:1], np.array([0]))
    with pytest.raises(ConfigError, match="'access' parameter of Oracle"):
        Oracle(model, access="everything")


def test_check_needs_names_missing_oracle_and_data_needs() -> None:
    model, _ = _fitted()

    class NeedsProba:
        name = "demo.needs_proba"
        threat = "infer_training_data"
        needs = frozenset({"proba", "population"})

    with pytest.raises(CapabilityError, match=r"needs \['proba'\]"):
        check_needs(NeedsProba(), Oracle(model, access="label", input_kind="image"), AttackData())
    with pytest.raises(CapabilityError, match=r"needs data \['population'\]"):
        check_needs(NeedsProba(), Oracle(model, input_kind="image"), AttackData())


def test_metrics() -> None:
    y = np.array([0] * 100 + [1] * 100)
    perfect = np.concatenate([np.zeros(100), np.ones(100)])
    assert metrics.auc(y, perfect) == 1.0 and metrics.tpr_at_fpr(y, perfect, 0.001) == 1.0
    rng = np.random.default_rng(0)
    noise = rng.random(200)
    assert abs(metrics.auc(y, noise) - 0.5) < 0.1
    assert metrics.advantage(y, noise) < 0.25
    assert metrics.fidelity([1, 0, 1, 1], [1, 1, 1, 1]) == 0.75
    with pytest.raises(ValueError, match="both classes"):
        metrics.auc(np.ones(4), noise[:4])
    pts = metrics.roc_points(y, noise, max_points=50)
    assert len(pts["fpr"]) <= 50 and pts["fpr"][0] == 0.0


def test_dataset_load_refuses_unknown_parameters() -> None:
    from finmlsec.datasets import load

    with pytest.raises(ConfigError, match=r"no parameter\(s\) \['n_rows'\]"):
        load("german_credit", n_rows=10)
