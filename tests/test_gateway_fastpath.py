"""The compiled hot paths reproduce the scikit-learn objects they replace, and the gateway uses
them only when they do."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from finmlsec.defences.input_screen import OODDetector
from finmlsec.gateway import fastpath
from finmlsec.gateway.demo import DemoModel, credit_scoring_model
from finmlsec.gateway.policy import Policy
from finmlsec.gateway.service import Gateway
from finmlsec.gateway.settings import Settings


@pytest.fixture(scope="module")
def model() -> DemoModel:
    return credit_scoring_model(seed=0)


def columns(X: pd.DataFrame) -> dict[str, list[object]]:
    return {c: X[c].tolist() for c in X.columns}


def test_compiled_model_equals_the_pipeline(model: DemoModel) -> None:
    est = model.target.estimator
    fast = fastpath.compile_model(est)
    assert fast is not None
    assert fastpath.compile_binary_logistic(est.steps[-1][1]) is not None  # the LR is compiled too
    X = model.heldout
    np.testing.assert_allclose(fast(columns(X)), est.predict_proba(X), rtol=0, atol=1e-12)
    # a category the encoder never saw is ignored by both (all zeros in its block)
    Y = X.iloc[:5].copy()
    Y[Y.columns[0]] = "never-seen"
    if not pd.api.types.is_numeric_dtype(X[X.columns[0]]):
        np.testing.assert_allclose(fast(columns(Y)), est.predict_proba(Y), rtol=0, atol=1e-12)


def test_compiled_screen_equals_the_isolation_forest(model: DemoModel) -> None:
    det = OODDetector(random_state=0, n_estimators=50).fit(model.train)
    forest = fastpath.compile_isolation_forest(det.iso_)
    assert forest is not None
    Z = det.encoder_.transform(model.heldout)
    noise = np.random.default_rng(0).normal(0, 5, size=(50, Z.shape[1]))
    for M in (Z, noise):
        np.testing.assert_allclose(forest(M), det.iso_.score_samples(M), rtol=0, atol=1e-12)
    screen = fastpath.compile_screen(det)
    assert screen is not None
    np.testing.assert_array_equal(screen(columns(model.heldout)),
                                  det.predict(model.heldout) == -1)


def test_unsupported_shapes_are_not_compiled(model: DemoModel) -> None:
    X = model.train
    cat = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    dropped = Pipeline([("pre", ColumnTransformer([("c", OneHotEncoder(drop="first"), cat)])),
                        ("clf", LogisticRegression())]).fit(X, np.arange(len(X)) % 2)
    assert fastpath.compile_model(dropped) is None
    assert fastpath.compile_model(LogisticRegression()) is None
    # a compiled function that disagrees with the original is refused by verification
    wrong = fastpath.compile_model(model.target.estimator)
    assert wrong is not None
    assert fastpath.verified(lambda c: wrong(c) + 1e-6, model.target.predict_proba,
                             model.heldout, model.schema.names) is None
    assert fastpath.verified(wrong, model.target.predict_proba, model.heldout,
                             model.schema.names) is wrong
    scaler = ColumnTransformer([("n", StandardScaler(), ["x"])]).fit(pd.DataFrame({"x": [1., 2.]}))
    with pytest.raises(fastpath.Unsupported):
        fastpath.compile_column_transformer(scaler)({"x": [None, "a"]})  # type: ignore[misc]


def test_gateway_answers_the_same_through_the_compiled_path(model: DemoModel, tmp_path: Path) -> None:
    policy = Policy.model_validate({
        "output": {"mode": "round", "decimals": 2},
        "extraction": {"enabled": True},
        "screening": {"enabled": True, "defence": "input_screen.ood",
                      "params": {"random_state": 0, "n_estimators": 30}}})
    gw = Gateway(Settings(db_url=f"sqlite:///{tmp_path / 'g.db'}", policy=policy),
                 target=model.target, schema=model.schema, reference=model.train)
    try:
        assert gw.fast_model is not None and gw.fast_screen is not None
        rows = gw.validator.validate(json.loads(model.heldout.iloc[:64].to_json(orient="records")))
        fast = gw._predict_records(rows)
        slow = gw.predict_frame(gw.validator.frame(rows))
        np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)
        big = gw.predict_sampled(model.heldout)
        parts = gw.split(big)
        np.testing.assert_allclose(parts["proba"], model.target.predict_proba(model.heldout),
                                   rtol=0, atol=1e-12)
        assert int(parts["seen"].sum()) == min(len(model.heldout),
                                               policy.extraction.max_rows_per_request)
    finally:
        gw.close()


def batch(model: DemoModel, n: int, seed: int) -> tuple[list[str], list[list[object]]]:
    X = model.heldout.sample(n, replace=True, random_state=seed)
    return model.schema.names, json.loads(X.to_json(orient="values"))


def test_vectorised_column_checks_give_what_the_dataframe_path_gives(model: DemoModel,
                                                                     tmp_path: Path) -> None:
    policy = Policy.model_validate({
        "output": {"mode": "round", "decimals": 2}, "extraction": {"enabled": True},
        "screening": {"enabled": True, "defence": "input_screen.ood",
                      "params": {"random_state": 0, "n_estimators": 30}}})
    gw = Gateway(Settings(db_url=f"sqlite:///{tmp_path / 'g.db'}", policy=policy),
                 target=model.target, schema=model.schema, reference=model.train)
    try:
        names, data = batch(model, 2000, seed=1)
        perm = list(np.random.default_rng(0).permutation(len(names)))  # any column order
        cols = [names[i] for i in perm]
        rows = [[r[i] for i in perm] for r in data]
        fast = gw.validator.columns_if_valid(cols, rows)
        assert fast is not None
        slow = gw.validator.validate_columns(cols, rows)
        k = 2 * len(gw.classes) + 1  # raw probabilities, answer, screen flag
        a, b = gw.predict_sampled(fast), gw.predict_sampled(slow)
        np.testing.assert_array_equal(a[:, :k], b[:, :k])
        assert gw.split(a)["suspicious"].any()  # the screen is exercised, not trivially clean
        # whole floats in an integer column are valid on both paths
        age = cols.index("age")
        rows[0][age] = float(rows[0][age])
        assert gw.validator.columns_if_valid(cols, rows) is not None
    finally:
        gw.close()


@pytest.mark.parametrize("field", ["age", "purpose", "credit_amount", "installment_rate"])
@pytest.mark.parametrize("value", [None, float("nan"), float("inf"), True, "7", 1.5, -1, 10**400,
                                   10**13, "yacht", 3])
def test_vectorised_column_checks_never_accept_what_the_full_check_refuses(
        model: DemoModel, field: str, value: object) -> None:
    from finmlsec.gateway.validation import InputProblem, RecordValidator

    v = RecordValidator(model.schema)
    names, data = batch(model, 300, seed=2)
    data[137][names.index(field)] = value
    try:
        v.validate_columns(names, data)
        refused = False
    except InputProblem:
        refused = True
    if refused:
        assert v.columns_if_valid(names, data) is None
    for bad_shape in ((names[:-1], data), (names + ["x"], [r + [1] for r in data]),
                      (names, data[:5] + [data[5][:-1]]), (names, [])):
        assert v.columns_if_valid(*bad_shape) is None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
