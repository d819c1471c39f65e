"""Regression tests for countermeasures that failed on the use cases' models and inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from finmlsec.datasets import load
from finmlsec.defences import DEFENCES, apply
from finmlsec.defences.robust import TrimmedLossClassifier
from finmlsec.schema import preprocessor


@pytest.fixture(scope="module")
def credit() -> tuple[pd.DataFrame, np.ndarray, Pipeline]:
    ds = load("german_credit")
    X = ds.X.iloc[:500].reset_index(drop=True)
    y = np.asarray(ds.y)[:500]
    pre = preprocessor(X=X, scale=False)
    return X, y, Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=2000))])


@pytest.mark.parametrize("wrap", [False, True], ids=["pipeline", "wrapped_pipeline"])
def test_bagging_keeps_dataframe_for_column_transformer(credit, wrap) -> None:
    X, y, pipe = credit
    est = TrimmedLossClassifier(pipe, trim=0.05, max_iter=2) if wrap else pipe
    bag = DEFENCES.get("robust.bagging")(n_estimators=5, random_state=0)
    model = apply(bag, est, X, y)
    acc = float(np.mean(model.predict(X) == y))
    assert acc > 0.7
    proba = model.predict_proba(X.iloc[:10])
    assert proba.shape == (10, 2) and np.allclose(proba.sum(axis=1), 1.0)


def test_adversarial_training_on_images_without_gradients() -> None:
    ds = load("ocr_digits")
    X, y = ds.X[:500], np.asarray(ds.y)[:500]
    at = DEFENCES.get("adversarial_training")(schema=ds.schema, rounds=2, n_per_round=30,
                                              attack_params={"max_iter": 64}, random_state=0)
    model = apply(at, LogisticRegression(max_iter=300), X, y)
    assert model.attack_used_ == "evasion.image"
    assert model.n_augmented_ > 0 and all(r.n_attacked == 30 for r in model.history_)
    assert float(np.mean(model.predict(ds.X[500:800]) == np.asarray(ds.y)[500:800])) > 0.85


def test_adversarial_training_on_images_with_gradients_uses_pgd() -> None:
    from finmlsec.targets.torch_estimator import TorchClassifier

    ds = load("ocr_digits")
    X, y = ds.X[:400].astype(np.float32), np.asarray(ds.y)[:400]
    net = TorchClassifier(architecture="mlp", kwargs={"in_features": 64, "n_classes": 10},
                          epochs=20, input_kind="image")
    at = DEFENCES.get("adversarial_training")(rounds=1, n_per_round=40,
                                              attack_params={"iterations": 10}, random_state=0)
    model = apply(at, net, X, y)
    assert model.attack_used_ == "evasion.pgd"
    assert model.history_[0].n_attacked == 40 and model.n_augmented_ > 0
    assert model.predict(X[:5]).shape == (5,)


def test_adversarial_training_on_text() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline

    ds = load("bank_intents")
    X, y = list(ds.X[:600]), np.asarray(ds.y)[:600]
    clf = make_pipeline(TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4)),
                        LogisticRegression(max_iter=300))
    at = DEFENCES.get("adversarial_training")(rounds=2, n_per_round=30, random_state=0)
    model = apply(at, clf, X, y)
    assert model.attack_used_ == "evasion.text"
    assert model.n_augmented_ > 0
    assert len(model.history_) >= 1 and model.history_[0].n_attacked == 30
    assert model.predict(["what is my balance"]).shape == (1,)


def test_adversarial_training_refuses_unsupported_inputs() -> None:
    from finmlsec.errors import CapabilityError

    at = DEFENCES.get("adversarial_training")(rounds=1, random_state=0)
    with pytest.raises(CapabilityError, match="supports tabular records"):
        apply(at, LogisticRegression(), [{"a": 1}, {"a": 2}], [0, 1])


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, object]:
    ds = load("ocr_digits")
    X, y = ds.X, np.asarray(ds.y)
    return X[:800], y[:800], X[800:1000], ds.schema


def test_input_screen_on_flat_images_with_pixel_schema(digits) -> None:
    X, y, held, schema = digits
    guarded = apply(DEFENCES.get("input_screen")(schema=schema, random_state=0),
                    LogisticRegression(max_iter=300), X, y)
    noise = np.random.default_rng(0).uniform(0, 1, size=(10, 64))
    broken = held[:3].copy()
    broken[:, 5] = 7.0  # outside the pixel range
    d = guarded.decide(np.vstack([held, noise, broken]))
    assert set(d.flags) == {"schema", "ood", "adversarial"}
    assert d.accept[:200].mean() >= 0.85
    assert not d.accept[200:].any()
    assert d.flags["schema"][210:].all() and "px_0_5" in d.reasons[210]
    assert d.flags["ood"][200:210].mean() >= 0.9


def test_input_screen_on_image_tensors_without_schema(digits) -> None:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    X, y, held, _ = digits
    flat = FunctionTransformer(np.reshape, kw_args={"shape": (-1, 64)})
    model = make_pipeline(flat, LogisticRegression(max_iter=300))
    guarded = apply(DEFENCES.get("input_screen")(schema=None, random_state=0),
                    model, X.reshape(-1, 8, 8), y)
    noise = np.random.default_rng(1).uniform(0, 1, size=(10, 8, 8))
    d = guarded.decide(np.concatenate([held.reshape(-1, 8, 8), noise]))
    assert set(d.flags) == {"ood", "adversarial"}
    assert d.accept[:200].mean() >= 0.85
    assert d.flags["ood"][200:].mean() >= 0.9
    assert guarded.predict(held[:5].reshape(-1, 8, 8)).shape == (5,)
