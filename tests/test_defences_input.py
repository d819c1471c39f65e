"""Input screening: schema validation, OOD and feature-squeezing detectors, text normalisation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.datasets import load_digits
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from finmlsec.datasets import load
from finmlsec.defences import DEFENCES, apply
from finmlsec.defences.input_screen import (
    InputScreen,
    OODDetector,
    ScreenedClassifier,
    SqueezeDetector,
    normalise_text,
    validate_rows,
)
from finmlsec.errors import ConfigError, DataError
from finmlsec.schema import preprocessor


@parametrize_with_checks([OODDetector(n_estimators=20, random_state=0),
                          OODDetector(n_estimators=20, random_state=0, envelope=0.1)])
def test_ood_detector_is_a_sklearn_outlier_detector(estimator, check):
    check(estimator)


class RowNorm(TransformerMixin, BaseEstimator):
    """Each record's Euclidean norm (a class, not a FunctionTransformer of a function: the
    check ids contain the estimator's repr, which must not hold a memory address, or pytest-xdist
    workers collect different test ids)."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.linalg.norm(np.asarray(X, dtype=float), axis=1, keepdims=True)


# SqueezeDetector watches an already fitted model, kept fitted through the checks' clone by
# FrozenEstimator; the checks vary the number of features, so the model takes any: naive Bayes
# on the records' norm (module-level class: picklable; GaussianNB: its fitted arrays hash
# the same after deepcopy, which check_estimators_overwrite_params relies on).
_ANY_WIDTH = make_pipeline(RowNorm(), GaussianNB()).fit(
    np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1])


# ScreenedClassifier: bare, and behind an OOD detector with quantile=0 (threshold at the lowest
# training score): with a positive quantile, or the feature squeezer (calibrated on a held-out
# fifth), predict refuses a share of any data by design (DataError), which the checks on
# predict cannot expect; the squeezer is checked on its own and in test_squeezing_* below.
@parametrize_with_checks([
    SqueezeDetector(FrozenEstimator(_ANY_WIDTH)),
    ScreenedClassifier(LogisticRegression()),
    ScreenedClassifier(LogisticRegression(),
                       ood=OODDetector(quantile=0.0, n_estimators=20, random_state=0)),
])
def test_squeezer_and_screened_classifier_are_sklearn_estimators(estimator, check):
    check(estimator)


def test_squeeze_detector_follows_the_outlier_convention():
    X, y = load_digits(return_X_y=True)
    model = LogisticRegression(max_iter=300).fit(X[:1000], y[:1000])
    det = SqueezeDetector(model, levels=4, fpr=0.1).fit(X[1000:1400])
    s = det.score(X[1400:])
    np.testing.assert_array_equal(det.predict(X[1400:]), np.where(s > det.threshold_, -1, 1))
    np.testing.assert_allclose(det.decision_function(X[1400:]), det.threshold_ - s)
    assert 0.02 < np.mean(det.predict(X[1000:1400]) == -1) <= 0.1
    with pytest.raises(ConfigError, match="is not fitted"):
        SqueezeDetector(LogisticRegression()).fit(X[:50])
    with pytest.raises(ConfigError, match="probabilistic classifier"):
        SqueezeDetector().fit(X[:50])
    with pytest.raises(ValueError, match="X has 10 features, but SqueezeDetector is expecting 64"):
        det.predict(X[:5, :10])
    with pytest.raises(ConfigError, match="'ood' and 'squeezer' work on numeric records"):
        ScreenedClassifier(LogisticRegression(), ood=OODDetector(), text=True).fit(["a"], [0])


def test_contract():
    assert DEFENCES.get("input_screen") is InputScreen
    assert InputScreen.countermeasure == "detect_malicious_input" and InputScreen.stage == "input"


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("c\u0430rd", "card"),                       # Cyrillic a
        ("bal\u200bance", "balance"),                # zero-width space
        ("\u202etransfer\u202c", "transfer"),        # bidi override
        ("\uff34\uff52\uff41\uff4e\uff53\uff46\uff45\uff52", "Transfer"),  # full-width (NFKC)
        ("l\u03bfan  \u0430pplic\u0430tion", "loan application"),  # Greek o, spaces collapsed
        ("plain text", "plain text"),
    ],
)
def test_normalise_text(raw, clean):
    assert normalise_text(raw) == clean


def test_text_screen_defeats_homoglyph_and_invisible_evasion():
    texts = ["what is my card limit", "block my card", "card stolen please block",
             "how much is the loan rate", "loan interest rate", "apply for a loan"] * 5
    y = np.array([0, 1, 1, 2, 2, 2] * 5)
    from sklearn.feature_extraction.text import TfidfVectorizer
    model = make_pipeline(TfidfVectorizer(), LogisticRegression(max_iter=500))
    plain = model.fit(texts, y)
    guarded = apply(InputScreen(text=True), model, texts, y)
    attacked = ["c\u0430rd st\u043elen", "bl\u043e\u200bck c\u0430rd"]
    assert plain.predict(attacked).tolist() == [2, 2]  # every token unknown: fooled
    assert guarded.predict(attacked).tolist() == [1, 1]


def test_schema_validation_names_fields():
    d = load("german_credit")
    X = d.X.iloc[:4].copy()
    X.loc[1, "age"] = 130
    X.loc[3, "purpose"] = "yacht"
    v = validate_rows(d.schema, X)
    assert v.accept.tolist() == [True, False, True, False]
    assert v.reasons[1] == "schema: invalid age=130" and "purpose='yacht'" in v.reasons[3]
    with pytest.raises(DataError, match="missing column"):
        validate_rows(d.schema, X.drop(columns=["age"]))


def test_tabular_screen_rejects_invalid_and_ood_and_refuses_to_predict():
    d = load("german_credit")
    tr, te = d.split(0.3, seed=0)
    lr = make_pipeline(preprocessor(d.schema, categories="data"),
                       LogisticRegression(max_iter=1000))
    guarded = apply(InputScreen(schema=d.schema, random_state=0), lr, tr.X, tr.y)
    clean = guarded.decide(te.X)
    assert clean.accept.mean() > 0.85
    # records drawn uniformly from the schema: valid, but unlike real applicants
    odd = d.schema.sample_uniform(300, 0)
    dec = guarded.decide(odd)
    assert dec.flags["schema"].sum() == 0
    assert (~dec.accept).mean() > (~clean.accept).mean() + 0.2
    assert any(r.startswith("out of distribution") for r in dec.reasons)
    bad = te.X.iloc[:2].copy()
    bad.loc[bad.index[0], "age"] = 12
    assert guarded.decide(bad).reasons[0] == "schema: invalid age=12"
    with pytest.raises(DataError, match="rejected by the input screen"):
        guarded.predict(bad)
    ok = np.flatnonzero(clean.accept)[:5]
    assert guarded.predict(te.X.iloc[ok]).shape == (5,)


def test_squeezing_flags_adversarial_digits():
    X, y = load_digits(return_X_y=True)
    guarded = apply(InputScreen(random_state=0, squeeze_fpr=0.05),
                    LogisticRegression(max_iter=500), X[:1200], y[:1200])
    model = guarded.estimator_
    Xt, yt = X[1200:1400], y[1200:1400]
    keep = model.predict(Xt) == yt
    Xt, yt = Xt[keep], yt[keep]
    # minimal white-box attack on the linear model: step towards the runner-up class until the
    # decision just flips (small, in-range perturbations)
    W = model.coef_
    adv = Xt.copy()
    for i in range(len(adv)):
        s = model.decision_function(adv[i:i + 1])[0]
        j = np.argsort(s)[-2]
        d = W[j] - W[yt[i]]
        for _ in range(200):
            if model.predict(adv[i:i + 1])[0] != yt[i]:
                break
            adv[i] = np.clip(adv[i] + 0.25 * np.sign(d), 0, 16)
    fooled = model.predict(adv) != yt
    assert fooled.mean() > 0.9
    flagged_adv = ~guarded.decide(adv[fooled]).accept
    flagged_clean = ~guarded.decide(Xt).accept
    assert flagged_adv.mean() > flagged_clean.mean() + 0.3


def test_bad_parameters():
    with pytest.raises(ConfigError, match="'quantile' parameter of OODDetector"):
        OODDetector(quantile=0.9).fit(np.zeros((5, 2)))


def test_the_envelope_refuses_records_far_beyond_the_training_range() -> None:
    """An isolation forest's score saturates beyond the data: a record 20 standard deviations
    out in one field scores like the training data's own extremes and passes; with
    ``envelope`` it is refused (and so is every record beyond the widened range), while the
    records inside keep the forest's verdict."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=2000), "b": rng.normal(size=2000),
                      "c": rng.choice(["x", "y"], 2000)})
    far = pd.DataFrame({"a": [20.0, 0.0, X["a"].max() + 0.05, np.nan], "b": [0.0, 0.0, 0.0, 0.0],
                        "c": ["x", "x", "x", "y"]})
    plain = OODDetector(quantile=0.002, random_state=0).fit(X)
    fenced = OODDetector(quantile=0.002, random_state=0, envelope=0.1).fit(X)
    assert plain.predict(far)[0] == 1  # what the envelope is for
    assert fenced.predict(far).tolist() == [-1, 1, 1, 1]  # within 10% of the range: inside
    assert fenced.decision_function(far)[0] < -1.0 and fenced.excess(far)[0] > 1.0
    inside = X.iloc[:500]
    np.testing.assert_array_equal(fenced.predict(inside), plain.predict(inside))
    arr = OODDetector(random_state=0, envelope=0.1).fit(X[["a", "b"]].to_numpy())
    assert arr.predict(np.array([[0.0, 0.0], [0.0, 50.0]])).tolist() == [1, -1]
    with pytest.raises(ConfigError, match="'envelope' parameter of OODDetector"):
        OODDetector(envelope=-1.0).fit(X)
