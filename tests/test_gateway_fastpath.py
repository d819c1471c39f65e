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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
