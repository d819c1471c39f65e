"""The contract every defence of this package keeps: registered with valid
catalogue ids, constructs with defaults, JSON-able parameters, leaves the data unchanged,
deterministic under a seed, and returns a fitted model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from finmlsec.datasets import load
from finmlsec.defences import COUNTERMEASURES, DEFENCES, STAGES, Defence, apply
from finmlsec.schema import preprocessor

MODULES = {"adversarial", "confidence", "distill", "dp", "feedback_screen", "generalise",
           "input_screen", "pate", "poison_filter", "robust"}
OURS = [(n, c) for n, c in DEFENCES.items() if c.__module__.rsplit(".", 1)[-1] in MODULES]
THREATS = {"infer_training_data", "generate_malicious_model", "dos_model_generator",
           "infer_model", "induce_false_prediction", "dos_model_operator",
           "dos_training_data_provider"}
# fast settings for the apply checks (the defaults are sized for real use)
FAST = {"pate": {"n_teachers": 10, "max_queries": 60}, "adversarial_training": {
    "rounds": 1, "n_per_round": 10, "attack_params": {"max_changes": 1, "n_anchors": 4}}}


def test_all_modules_register():
    assert {c.__module__.rsplit(".", 1)[-1] for _, c in OURS} == MODULES
    assert len(OURS) >= 15


@pytest.mark.parametrize("name, cls", OURS, ids=[n for n, _ in OURS])
def test_declares_catalogue_ids_and_constructs_with_defaults(name, cls):
    assert cls.countermeasure in COUNTERMEASURES
    assert cls.stage in STAGES
    assert cls.counters and set(cls.counters) <= THREATS
    assert isinstance(cls.summary, str) and cls.summary
    obj = cls()
    assert isinstance(obj, Defence) and not hasattr(obj, "apply")
    params = obj.get_params(deep=False)
    json.dumps({k: v for k, v in params.items() if k not in ("estimator", "student", "model",
                                                              "schema")})


@pytest.fixture(scope="module")
def credit():
    d = load("german_credit")
    tr, te = d.split(0.5, seed=0)

    def make():
        pre = preprocessor(d.schema, categories="data")
        return make_pipeline(pre, LogisticRegression(max_iter=500))

    return d, tr, te, make


TABULAR = [(n, c) for n, c in OURS if not c.neural_only]


@pytest.mark.parametrize("name, cls", TABULAR, ids=[n for n, _ in TABULAR])
def test_apply_fits_leaves_data_unchanged_and_is_seeded(name, cls, credit):
    d, tr, te, make = credit
    X, y = tr.X.iloc[:300].copy(), tr.y[:300].copy()
    X0, y0 = X.copy(), y.copy()
    kwargs = dict(FAST.get(name, {}))
    import inspect

    sig = inspect.signature(cls).parameters
    if "schema" in sig:
        kwargs["schema"] = d.schema
    if "random_state" in sig:
        kwargs["random_state"] = 0
    first = apply(cls(**kwargs), make(), X, y)
    pd.testing.assert_frame_equal(X, X0)
    np.testing.assert_array_equal(y, y0)
    probe = te.X.iloc[:50]
    if name == "input_screen":  # predicts only accepted inputs
        probe = probe.iloc[np.flatnonzero(first.decide(probe).accept)]
    p1 = np.asarray(first.predict(probe))
    assert set(p1) <= set(np.unique(y))
    second = apply(cls(**kwargs), make(), X, y)
    np.testing.assert_array_equal(np.asarray(second.predict(probe)), p1)
