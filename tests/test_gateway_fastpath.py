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
    assert fastpath.verified(lambda: lambda c: wrong(c) + 1e-6, model.target.predict_proba,
                             model.heldout, model.schema.names) is None
    assert fastpath.verified(lambda: wrong, model.target.predict_proba, model.heldout,
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
        pr = gw.predictor
        assert pr.fast_model is not None and pr.fast_screen is not None
        v = gw.validator.records(json.loads(model.heldout.iloc[:64].to_json(orient="records")))
        fast, slow = pr.predict(v), pr.predict_frame(v.frame())
        for name in ("proba", "answer", "suspicious", "seen", "far", "encoded"):
            np.testing.assert_allclose(getattr(fast, name), getattr(slow, name), rtol=0,
                                       atol=1e-12, err_msg=name)
        big = pr.predict_large(gw.validator.records(
            json.loads(model.heldout.to_json(orient="records"))))
        np.testing.assert_allclose(big.proba, model.target.predict_proba(model.heldout),
                                   rtol=0, atol=1e-12)
        assert len(big.observed) == min(len(model.heldout),
                                        policy.extraction.max_rows_per_request)
        part = big[3:9]  # the slice a micro-batched request gets
        assert len(part) == 6 and part.encoded is not None and part.encoded.shape[0] == 6
        np.testing.assert_array_equal(part.answer, big.answer[3:9])
    finally:
        gw.close()


def test_a_model_whose_private_attributes_changed_falls_back_to_the_original(
        model: DemoModel, tmp_path: Path) -> None:
    """Compiling reads fitted attributes a scikit-learn release may rename or reshape: here the
    encoder's categories are lists (scikit-learn itself still works with them, the compiler
    does not). The gateway starts on the original pipeline and answers what it answers."""
    import copy

    from finmlsec.targets.base import SklearnTarget

    pipe = copy.deepcopy(model.target.estimator)
    enc = pipe.steps[0][1].named_transformers_["cat"]
    enc.categories_ = [list(c) for c in enc.categories_]
    with pytest.raises(AttributeError):
        fastpath.compile_model(pipe)  # what crashed start-up when compiling ran unguarded
    gw = Gateway(Settings(db_url=f"sqlite:///{tmp_path / 'g.db'}", policy=Policy()),
                 target=SklearnTarget(pipe), schema=model.schema, reference=model.train)
    try:
        assert gw.predictor.fast_model is None and not gw.predictor.fast
        v = gw.validator.records(json.loads(model.heldout.iloc[:20].to_json(orient="records")))
        got = gw.predictor.predict(v).proba
        np.testing.assert_allclose(got, model.target.predict_proba(model.heldout.iloc[:20]),
                                   rtol=0, atol=1e-12)
    finally:
        gw.close()


def batch(model: DemoModel, n: int, seed: int) -> tuple[list[str], list[list[object]]]:
    X = model.heldout.sample(n, replace=True, random_state=seed)
    return model.schema.names, json.loads(X.to_json(orient="values"))


def test_the_record_and_column_forms_give_the_same_outcome(model: DemoModel,
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
        by_columns = gw.validator.columns(cols, rows)
        by_records = gw.validator.records([dict(zip(names, r, strict=True)) for r in data])
        a = gw.predictor.predict_large(by_columns)
        b = gw.predictor.predict_large(by_records)
        c = gw.predictor.predict_frame(by_records.frame())  # the original objects
        for name in ("proba", "answer", "suspicious"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
            np.testing.assert_allclose(getattr(a, name), getattr(c, name), rtol=0, atol=1e-12)
        assert a.suspicious.any()  # the screen is exercised, not trivially clean
        # whole floats in an integer column are valid in both forms
        age = cols.index("age")
        rows[0][age] = float(rows[0][age])
        assert gw.validator.columns(cols, rows).record(0)["age"] == int(rows[0][age])
    finally:
        gw.close()


BAD = [None, float("nan"), float("inf"), True, "7", " 5e1 ", "2835", 1.5, -1, 10**400, 10**13,
       "yacht", 3, [1], {"a": 1}, ["a"]]


@pytest.mark.parametrize("field", ["age", "purpose", "credit_amount", "installment_rate"])
@pytest.mark.parametrize("value", BAD)
def test_record_and_column_forms_and_vectorised_checks_agree_on_every_value(
        model: DemoModel, field: str, value: object) -> None:
    """One value placed in a batch of 300: the record form, the column form, and the column
    form checked value by value (no vectorised step) all accept it (with the same result) or
    all refuse it with the same message."""
    from finmlsec.gateway.validation import InputProblem, InputValidator

    vectorised, each = InputValidator(model.schema), InputValidator(model.schema, vector_rows=10**9)
    names, data = batch(model, 300, seed=2)
    data[137][names.index(field)] = value
    records = [dict(zip(names, r, strict=True)) for r in data]
    results = []
    for check in (lambda: vectorised.columns(names, data), lambda: each.columns(names, data),
                  lambda: vectorised.records(records), lambda: each.records(records)):
        try:
            results.append(check().record(137))
        except InputProblem as exc:
            results.append(str(exc))
            assert "record 137" in str(exc) and repr(field) in str(exc)
            if isinstance(value, str):  # the value a client typed is not in the audit form
                assert repr(value) not in exc.redacted
    assert all(r == results[0] for r in results), results
    if isinstance(value, str | bool | list | dict) or value is None:
        assert isinstance(results[0], str), f"{value!r} accepted in {field}"


def test_malformed_column_batches_are_refused_by_shape(model: DemoModel) -> None:
    from finmlsec.gateway.validation import InputProblem, InputValidator

    v = InputValidator(model.schema)
    names, data = batch(model, 100, seed=3)
    for cols, rows, why in (
            (names[:-1], [r[:-1] for r in data], "missing field"),
            (names + ["x"], [r + [1] for r in data], "unknown field"),
            (names, data[:5] + [data[5][:-1]], "values for"),
            ([[n] for n in names], data, "field names"),  # unhashable names: a 422, not a 500
            (names[:1] * 2 + names[2:], data, "duplicates"),
            (names, [{"a": 1}], "rows")):
        with pytest.raises(InputProblem, match=why):
            v.columns(cols, rows)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))


def test_infrequent_categories_compile_to_scikit_learns_layout() -> None:
    # a bounded one-hot (at most 3 columns: the 2 most frequent values, then the rest) as the
    # schema-less preprocessor builds for free-text columns; unknown values go to the rest
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"job": rng.choice(["a", "b", "c", "d", "e"], p=[.5, .3, .1, .05, .05],
                                        size=200),
                      "city": rng.choice(["x", "y"], size=200)})
    ct = ColumnTransformer([("c", OneHotEncoder(max_categories=3,
                                                handle_unknown="infrequent_if_exist",
                                                sparse_output=False), ["job", "city"])]).fit(X)
    fast = fastpath.compile_column_transformer(ct)
    assert fast is not None
    probe = pd.DataFrame({"job": ["a", "b", "c", "e", "never-seen"], "city": ["x", "y"] * 2 + ["z"]})
    np.testing.assert_array_equal(fast(columns(probe)), ct.transform(probe))


def test_the_compiled_screen_keeps_the_envelope(model: DemoModel, tmp_path: Path) -> None:
    """The default screen's envelope (records beyond the training range) holds on the compiled
    path too: verification at start-up sees only reference records, all inside it."""
    from finmlsec.gateway.defaults import derive_policy

    default = derive_policy(None, has_reference=True)[0]
    assert default.screening.params["envelope"] == 0.25
    # a narrower envelope, so that uniform records of the schema's ranges cross it
    policy = default.model_copy(update={"screening": default.screening.model_copy(
        update={"params": {**default.screening.params, "envelope": 0.01}})})
    gw = Gateway(Settings(db_url=f"sqlite:///{tmp_path / 'g.db'}", policy=policy),
                 target=model.target, schema=model.schema, reference=model.train)
    try:
        assert gw.predictor.fast_screen is not None
        odd = model.schema.sample_uniform(300, 0)[model.schema.names]
        v = gw.validator.records(json.loads(pd.concat([model.heldout, odd]).to_json(
            orient="records")))
        fast, slow = gw.predictor.predict(v), gw.predictor.predict_frame(v.frame())
        np.testing.assert_array_equal(fast.suspicious, slow.suspicious)
        beyond = gw.guards.screen.excess(v.frame()) > 0
        assert beyond.sum() >= 10 and fast.suspicious[beyond].all()
    finally:
        gw.close()
