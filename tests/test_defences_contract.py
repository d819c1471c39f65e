"""The contract every registered countermeasure keeps, over the whole registries: nothing here
names a defence or a guard, so a new registered one is tested as it is (with its declared fast
settings, ``_fast_params``).

Defences (``DEFENCES``): scikit-learn classifier meta-estimators with valid catalogue ids,
constructed with defaults, JSON-able parameters, every declared parameter constraint enforced at
fit with a ``ConfigError``, the data left unchanged, deterministic under a seed, no ``apply``
method, and scikit-learn's estimator checks (``parametrize_with_checks``; a check a defence
cannot pass is declared in its ``_sklearn_check_deviations`` with the reason).

Serving guards (``GUARDS``): valid catalogue ids and stage, defaults valid, every declared
constraint enforced by ``validate``; a scanned guard wraps a fitted model and answers through
it; an input guard fits on clean records and flags with -1.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from finmlsec.datasets import load
from finmlsec.defences import (
    COUNTERMEASURES,
    DEFENCES,
    GUARDS,
    STAGES,
    Defence,
    Guard,
    InputScreening,
    apply,
    build_guard,
    measured,
)
from finmlsec.errors import ConfigError
from finmlsec.ids import ATTACK_IDS
from finmlsec.schema import preprocessor

DEFENDED = DEFENCES.items()
GUARDED = GUARDS.items()
#: a value no declared constraint accepts
ODD = object()


@pytest.mark.parametrize("name, cls", DEFENDED, ids=[n for n, _ in DEFENDED])
def test_defence_declares_catalogue_ids_and_constructs_with_defaults(name, cls):
    assert issubclass(cls, Defence)
    assert cls.countermeasure in COUNTERMEASURES and cls.stage in STAGES
    assert cls.stage != "gateway"  # request-level countermeasures are guards
    assert cls.counters and set(cls.counters) <= set(ATTACK_IDS)
    assert isinstance(cls.summary, str) and cls.summary
    obj = cls()
    assert not hasattr(obj, "apply")  # one way to fit: fit (or finmlsec.defences.apply)
    # fits of the defended model one fit makes: the scan's time limits grow with it
    assert isinstance(obj.fit_cost(), float) and obj.fit_cost() >= 1
    params = obj.get_params(deep=False)
    assert "estimator" in params
    assert set(cls._parameter_constraints) <= set(params)
    assert set(cls._fast_params) <= set(params)
    json.dumps({k: v for k, v in params.items() if k not in ("estimator", "student", "model",
                                                              "schema")})


def _constrained(cls):
    return [(n, c, p) for n, c in cls for p in c._parameter_constraints]


CONSTRAINED = _constrained(DEFENDED)


@pytest.mark.parametrize("name, cls, param", CONSTRAINED,
                         ids=[f"{n}-{p}" for n, _, p in CONSTRAINED])
def test_defence_checks_each_declared_parameter_at_fit(name, cls, param):
    bad = cls(**{param: ODD})
    X, y = np.arange(40.0).reshape(20, 2), np.arange(20) % 2
    with pytest.raises(ConfigError, match=f"The '{param}' parameter of {cls.__name__} must be"):
        bad.fit(X, y)


@pytest.fixture(scope="module")
def credit():
    d = load("german_credit")
    tr, te = d.split(0.5, seed=0)

    def make():
        pre = preprocessor(d.schema, categories="data")
        return make_pipeline(pre, LogisticRegression(max_iter=500))

    return d, tr, te, make


def _configured(cls, schema):
    import inspect

    kwargs = dict(cls._fast_params)
    sig = inspect.signature(cls).parameters
    if "schema" in sig:
        kwargs["schema"] = schema
    if "random_state" in sig:
        kwargs["random_state"] = 0
    return cls(**kwargs)


TABULAR = [(n, c) for n, c in DEFENDED if not c.neural_only]


@pytest.mark.parametrize("name, cls", TABULAR, ids=[n for n, _ in TABULAR])
def test_fit_leaves_data_unchanged_is_seeded_and_answers(name, cls, credit):
    d, tr, te, make = credit
    X, y = tr.X.iloc[:300].copy(), tr.y[:300].copy()
    X0, y0 = X.copy(), y.copy()
    defence = _configured(cls, d.schema)
    before = clone(defence).get_params(deep=False)
    first = apply(defence, make(), X, y)
    pd.testing.assert_frame_equal(X, X0)
    np.testing.assert_array_equal(y, y0)
    assert not hasattr(defence, "classes_")  # apply fitted a clone
    assert isinstance(first, cls) and list(first.classes_) == sorted(set(y))
    fitted = first.get_params(deep=False)
    assert {k: fitted[k] for k in before if k != "estimator"} == {
        k: v for k, v in before.items() if k != "estimator"}  # parameters stored unchanged
    probe = te.X.iloc[:50]
    if isinstance(first, InputScreening):  # predicts the inputs it accepts
        probe = probe.iloc[np.flatnonzero(first.decide(probe).accept)]
    p1 = np.asarray(first.predict(probe))
    assert set(p1) <= set(np.unique(y))
    second = apply(defence, make(), X, y)
    np.testing.assert_array_equal(np.asarray(second.predict(probe)), p1)


def test_defences_nest():
    """One defence is another's estimator: a trimmed-loss model behind rounded confidences."""
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    inner = DEFENCES.get("robust.trimmed_loss")(LogisticRegression(max_iter=2000), trim=0.1)
    outer = DEFENCES.get("confidence.round")(inner, decimals=1).fit(X, y)
    assert outer.estimator_.kept_.sum() == int(np.ceil(0.9 * len(y)))
    assert set(np.round(outer.predict_proba(X).ravel() * 10, 6)) <= set(np.arange(11.0))


def _sklearn_instances():
    import inspect

    out = []
    for _, cls in DEFENDED:
        if cls.neural_only:  # retrains a torch network: not a scikit-learn estimator's data
            continue
        params = {**cls._fast_params, **cls._sklearn_check_params}
        if "random_state" in inspect.signature(cls).parameters:
            params.setdefault("random_state", 0)
        est = params.pop("estimator", LogisticRegression(max_iter=200))
        out.append(cls(est, **params))
    return out


def _deviations(estimator):
    return dict(type(estimator)._sklearn_check_deviations)


@parametrize_with_checks(_sklearn_instances(), expected_failed_checks=_deviations,
                         xfail_strict=True)
def test_every_defence_is_a_sklearn_classifier(estimator, check):
    check(estimator)


# -- serving guards ------------------------------------------------------------------------------
@pytest.mark.parametrize("name, cls", GUARDED, ids=[n for n, _ in GUARDED])
def test_guard_declares_catalogue_ids_and_valid_defaults(name, cls):
    assert issubclass(cls, Guard) and name not in DEFENCES
    assert cls.countermeasure in COUNTERMEASURES and cls.stage in ("gateway", "input")
    assert cls.counters and set(cls.counters) <= set(ATTACK_IDS)
    assert isinstance(cls.summary, str) and cls.summary
    obj = cls()
    assert obj.validate() is obj and not hasattr(obj, "apply")
    json.dumps({k: v for k, v in obj.get_params(deep=False).items() if k != "estimator"})


GUARD_CONSTRAINED = _constrained(GUARDED)


@pytest.mark.parametrize("name, cls, param", GUARD_CONSTRAINED,
                         ids=[f"{n}-{p}" for n, _, p in GUARD_CONSTRAINED])
def test_guard_checks_each_declared_parameter(name, cls, param):
    with pytest.raises(ConfigError, match=f"The '{param}' parameter of {cls.__name__} must be"):
        cls(**{param: ODD}).validate()


SCANNED = [(n, c) for n, c in GUARDED if c.scanned]
INPUT = [(n, c) for n, c in GUARDED if c.stage == "input"]


@pytest.mark.parametrize("name, cls", SCANNED, ids=[n for n, _ in SCANNED])
def test_scanned_guard_wraps_a_fitted_model(name, cls, credit):
    d, tr, te, make = credit
    model = make().fit(tr.X, tr.y)
    X0 = tr.X.copy()
    guard = cls(**cls._fast_params)
    served = guard.wrap(model, tr.X)
    pd.testing.assert_frame_equal(tr.X, X0)
    assert list(served.classes_) == list(model.classes_)
    np.testing.assert_array_equal(served.predict(te.X.iloc[:5]), model.predict(te.X.iloc[:5]))
    assert name in dict(measured())


@pytest.mark.parametrize("name, cls", INPUT, ids=[n for n, _ in INPUT])
def test_input_guard_is_built_by_name_and_flags_outliers(name, cls, credit):
    d, tr, te, make = credit
    model = make().fit(tr.X, tr.y)
    guard = build_guard(name, model, **cls._fast_params).fit(tr.X)
    flags = np.asarray(guard.predict(te.X))
    assert set(flags) <= {-1, 1} and (flags == 1).mean() > 0.5
    assert name not in dict(measured())  # measured through the defence that combines it


def test_a_guard_name_with_an_unknown_parameter_is_a_config_error():
    with pytest.raises(ConfigError, match="has no parameter"):
        build_guard("ratelimit.query_budget", per_week=5)
