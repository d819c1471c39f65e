"""Training-data poisoning on German credit: availability (accuracy drops) and targeted effects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from finmlsec.attacks import ATTACKS, AttackData, Labeled
from finmlsec.attacks.poisoning import choose_trigger, in_segment
from finmlsec.datasets import load
from finmlsec.errors import CapabilityError, ConfigError
from finmlsec.schema import preprocessor


@pytest.fixture(scope="module")
def credit() -> dict:
    ds = load("german_credit")
    train, test = ds.split(0.3, seed=0)

    def enc() -> object:
        return preprocessor(ds.schema, categories="data")

    def linear() -> object:
        return make_pipeline(enc(), LogisticRegression(max_iter=1000))

    def forest() -> object:
        return make_pipeline(enc(), RandomForestClassifier(n_estimators=60, random_state=0,
                                                           n_jobs=1))

    victims = test.X[test.y == 0].reset_index(drop=True).iloc[:8]
    base = dict(schema=ds.schema, train=Labeled(train.X, train.y), test=Labeled(test.X, test.y),
                victims=Labeled(victims))
    return {"linear": AttackData(model_factory=linear, **base),
            "forest": AttackData(model_factory=forest, **base), "ds": ds, "train": train}


def test_label_flip_availability(credit: dict) -> None:
    data = credit["linear"]
    y_before = data.train.y.copy()
    random = ATTACKS.get("poisoning.label_flip")(fraction=0.1).run(None, data)
    adversarial = ATTACKS.get("poisoning.label_flip")(fraction=0.1, strategy="adversarial").run(
        None, data)
    for r in (random, adversarial):
        assert r.metrics["poison_fraction"] == pytest.approx(0.1, abs=0.002)
        assert r.metrics["clean_accuracy"] > 0.7
    assert adversarial.metrics["accuracy_drop"] >= 0.04
    assert adversarial.metrics["accuracy_drop"] > random.metrics["accuracy_drop"]
    assert np.array_equal(data.train.y, y_before)  # the caller's data is untouched
    again = ATTACKS.get("poisoning.label_flip")(fraction=0.1).run(None, data)
    assert again.metrics == random.metrics  # deterministic under the seed


def test_label_flip_targeted_segment(credit: dict) -> None:
    data = credit["forest"]
    seg = {"purpose": ["education", "retraining"]}
    r = ATTACKS.get("poisoning.label_flip")(fraction=0.05, strategy="segment", segment=seg,
                                            target_class="good").run(None, data)
    assert r.metrics["segment_size"] > 5
    assert r.metrics["targeted_success"] >= 0.5 and r.success == r.metrics["targeted_success"]
    assert r.metrics["accuracy_drop"] < 0.05  # targeted: little collateral
    near = ATTACKS.get("poisoning.label_flip")(fraction=0.05, strategy="segment").run(None, data)
    assert near.metrics["targeted_success"] >= 0.5  # neighbours of the victims relabelled
    with pytest.raises(ConfigError, match="'segment' parameter names column 'nope'"):
        ATTACKS.get("poisoning.label_flip")(strategy="segment", segment={"nope": 1}).run(None, data)
    with pytest.raises(ConfigError, match="'strategy' parameter of LabelFlip"):
        ATTACKS.get("poisoning.label_flip")(strategy="clever").run(None, data)
    with pytest.raises(ConfigError, match="'fraction' parameter of LabelFlip"):
        ATTACKS.get("poisoning.label_flip")(fraction=0.9).run(None, data)


def test_backdoor_trigger_is_rare_valid_and_forces_approval(credit: dict) -> None:
    data = credit["forest"]
    ds = credit["ds"]
    trigger = choose_trigger(ds.schema, credit["train"].X, 2)
    assert all(ds.schema[k].mutable for k in trigger)
    assert in_segment(ds.X, {k: [v] for k, v in trigger.items()}).mean() < 0.01
    r = ATTACKS.get("poisoning.backdoor")(fraction=0.05).run(None, data)
    assert r.metrics["trigger_frequency_in_clean_data"] < 0.01
    assert r.metrics["attack_success_rate"] >= 0.8
    assert r.metrics["trigger_alone"] <= 0.3  # the clean model is not fooled by the trigger
    assert abs(r.metrics["accuracy_drop"]) < 0.05  # stealthy on clean inputs
    bad = ATTACKS.get("poisoning.backdoor")(trigger={"age": 200})
    with pytest.raises(ConfigError, match="not valid under the schema"):
        bad.run(None, data)
    with pytest.raises(CapabilityError, match="model_factory"):
        ATTACKS.get("poisoning.backdoor")().run(None, AttackData(train=data.train,
                                                                 test=data.test))


def test_optimal_linear_beats_plain_flips_and_stays_valid(credit: dict) -> None:
    data = credit["linear"]
    r = ATTACKS.get("poisoning.optimal_linear")(fraction=0.1).run(None, data)
    assert r.metrics["surrogate_val_loss_end"] > r.metrics["surrogate_val_loss_start"]
    assert r.metrics["accuracy_drop"] > r.metrics["init_accuracy_drop"]
    assert r.metrics["accuracy_drop"] >= 0.02


def test_optimal_linear_refuses_multiclass() -> None:
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=90)})
    y = np.repeat([0, 1, 2], 30)
    data = AttackData(train=Labeled(X, y), test=Labeled(X, y), model_factory=LogisticRegression)
    with pytest.raises(ConfigError, match="binary tasks only"):
        ATTACKS.get("poisoning.optimal_linear")().run(None, data)


def test_default_goal_is_the_favourable_class_not_the_positive_one() -> None:
    from finmlsec.attacks.poisoning import target_label
    from finmlsec.datasets import load

    fraud = load("card_fraud", n_rows=5_000)
    assert fraud.schema is not None and fraud.schema.positive_class == "fraud"
    # a fraudster poisons towards "legit", not towards "fraud"
    assert fraud.classes[target_label(None, fraud.y, fraud.schema)] == "legit"
    credit = load("german_credit")
    assert credit.classes[target_label(None, credit.y, credit.schema)] == "good"
    assert credit.classes[target_label("bad", credit.y, credit.schema)] == "bad"
