"""Feedback-loop poisoning (flow G) on text and image models: near copies of the attacker's own
inquiry or scanned digit, reported with the class they want, flip the retrained model; a screen
stops it on images."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline

from finmlsec.attacks import ATTACKS, AttackData, Labeled
from finmlsec.attacks.feedback_loop import craft_images, craft_text
from finmlsec.datasets import load
from finmlsec.defences.feedback_screen import FeedbackScreen
from finmlsec.errors import ConfigError
from finmlsec.targets.oracle import Oracle

ATTACK = "poisoning.feedback_loop_unstructured"


def _system(name: str, factory: object, n_train: int) -> dict:
    ds = load(name)
    train, rest = ds.split(0.5, seed=0)
    population, test = rest.split(0.5, seed=0)
    take = np.random.default_rng(0).permutation(len(train.y))[:n_train]
    Xtr = [train.X[i] for i in take] if isinstance(train.X, list) else np.asarray(train.X)[take]
    ytr = np.asarray(train.y)[take]
    deployed = factory().fit(Xtr, ytr)
    data = AttackData(train=Labeled(Xtr, ytr), population=Labeled(population.X, population.y),
                      test=Labeled(test.X, test.y), model_factory=factory,
                      victims=Labeled(test.X[:1] if isinstance(test.X, list)
                                      else np.asarray(test.X)[:1]))
    return {"data": data, "deployed": deployed}


@pytest.fixture(scope="module")
def text() -> dict:
    def factory() -> object:
        return make_pipeline(TfidfVectorizer(), LogisticRegression(C=10.0, max_iter=200))

    return _system("bank_intents", factory, 300)


@pytest.fixture(scope="module")
def image() -> dict:
    def factory() -> object:
        return KNeighborsClassifier(n_neighbors=5)  # flipped once 3 of 5 neighbours are copies

    return _system("ocr_digits", factory, 300)


def _wanted(s: dict) -> int:
    """A class the deployed model does not give the victim."""
    now = int(s["deployed"].predict(s["data"].victims.X)[0])
    return (now + 1) % len(s["deployed"].classes_)


@pytest.mark.parametrize("kind", ["text", "image"])
def test_near_copies_flip_the_retrained_model_with_a_small_poisoned_share(
        kind: str, request: pytest.FixtureRequest) -> None:
    s = request.getfixturevalue(kind)
    goal = _wanted(s)
    att = ATTACKS.get(ATTACK)(target_class=goal, reports_per_round=2, max_rounds=20,
                              max_poison_share=0.05, benign_per_round=10)
    r = att.run(Oracle(s["deployed"], access="label", input_kind=kind), s["data"])
    assert r.metrics["flipped"] == 1.0 and r.success == 1.0
    assert 1 <= r.metrics["rounds_to_flip"] <= 20
    assert 0 < r.metrics["poison_share_train"] <= 0.05
    assert r.metrics["poisoned_accepted"] == r.metrics["poisoned_submitted"]
    assert r.metrics["accuracy_drop"] < 0.05  # the damage is targeted
    # the caller's data are unchanged: the model trained on them still decides as deployed
    fresh = s["data"].model_factory().fit(s["data"].train.X, s["data"].train.y)
    assert fresh.predict(s["data"].victims.X)[0] != goal


def test_the_feedback_screen_stops_the_image_loop(image: dict) -> None:
    goal = _wanted(image)
    data = image["data"]
    screen = FeedbackScreen().fit(data.train.X, data.train.y)
    att = ATTACKS.get(ATTACK)(target_class=goal, reports_per_round=2, max_rounds=5,
                              screen=screen)
    r = att.run(Oracle(image["deployed"], access="label", input_kind="image"), data)
    assert r.metrics["flipped"] == 0.0
    assert r.metrics["poisoned_accepted"] < r.metrics["poisoned_submitted"] / 2
    assert r.params["screen"] == "FeedbackScreen"


def test_a_screen_refusing_every_report_leaves_the_text_model_as_deployed(text: dict) -> None:
    class RefuseAll:
        def screen(self, X: object, y: np.ndarray) -> np.ndarray:
            return np.zeros(len(y), dtype=bool)

    att = ATTACKS.get(ATTACK)(target_class=_wanted(text), max_rounds=3, screen=RefuseAll())
    r = att.run(Oracle(text["deployed"], access="label", input_kind="text"), text["data"])
    assert r.metrics["flipped"] == 0.0 and r.metrics["poisoned_accepted"] == 0


def test_crafted_reports_are_near_copies() -> None:
    rng = np.random.default_rng(1)
    base = "how much is left in my savings account"
    out = craft_text(base, 20, 1, rng, exact_first=True)
    assert out[0] == base and len(set(out)) > 5
    for t in out[1:]:  # one word edit: at most one word more or less
        assert abs(len(t.split()) - len(base.split())) <= 1 and t != ""
    img = np.random.default_rng(0).random((1, 64)).astype(np.float32)
    Z = craft_images(img, 50, 0.05, 0.0, 1.0, rng)
    assert Z.shape == (50, 64) and Z.dtype == np.float32
    assert Z.min() >= 0.0 and Z.max() <= 1.0
    assert 0.02 < float(np.std(Z - img)) < 0.06


def test_parameters_are_checked_and_tabular_is_not_claimed() -> None:
    cls = ATTACKS.get(ATTACK)
    assert set(cls.input_kinds) == {"text", "image"} and "schema" not in cls.needs
    with pytest.raises(ConfigError, match="noise"):
        cls(noise=0.0).run(None, AttackData())


def test_the_scan_leaves_out_a_defence_whose_input_kinds_do_not_fit(tmp_path) -> None:
    from finmlsec.scan.runner import _checker
    from finmlsec.scan.work import ScanContext, scenario_for
    from scan_support import build_credit_system

    ctx = ScanContext(spec_path=str(build_credit_system(tmp_path)))
    _, _, defence_check = _checker(scenario_for(ctx), ctx)
    assert FeedbackScreen.input_kinds == ("tabular", "image")
    assert defence_check("feedback_screen") is None  # a tabular model
    FeedbackScreen.input_kinds = ("text",)
    try:
        assert defence_check("feedback_screen") == "works on text inputs, this model takes tabular"
    finally:
        FeedbackScreen.input_kinds = ("tabular", "image")


@pytest.mark.parametrize(("profile", "n"), [("quick", 5), ("standard", 10), ("thorough", 20)])
def test_the_profiles_give_the_image_and_text_loop_as_many_targets_as_the_tabular_one(
        profile: str, n: int) -> None:
    from finmlsec.scan.profiles import get_profile

    p = get_profile(profile)
    assert p.params_for(ATTACKS.get(ATTACK))["n_targets"] == n
    assert p.params_for(ATTACKS.get("poisoning.feedback_loop"))["n_targets"] == n


def test_the_image_loop_measures_the_share_of_several_targets_with_its_interval(
        image: dict) -> None:
    from dataclasses import replace

    from finmlsec.metrics import clopper_pearson

    data = image["data"]
    data = replace(data, victims=Labeled(np.asarray(data.test.X)[:40]))
    oracle = Oracle(image["deployed"], access="label", input_kind="image")
    att = ATTACKS.get(ATTACK)(n_targets=6, reports_per_round=1, max_rounds=2,
                              benign_per_round=0, seed=3)
    r = att.run(oracle, data)
    m = r.metrics
    assert m["n_targets"] == 6 and m["n_trials"] == 6 and len(r.details["targets"]) == 6
    won = int(m["flipped_by_attacker"])
    assert 0 < won < 6 and r.success == won / 6  # a share, not one target's yes or no
    assert (m["success_ci_low"], m["success_ci_high"]) == pytest.approx(clopper_pearson(won, 6))
    assert f"6 target(s): {won} flipped by the attacker's reports" in r.notes[0]
    # the same seed attacks the same targets; another seed draws others
    assert att.run(oracle, data).details["targets"] == r.details["targets"]
    other = replace(att, seed=4).run(oracle, data).details["targets"]
    assert other != r.details["targets"]
