"""Feedback-loop poisoning (flow G) on German credit: the target flips with a small poisoned
share, and a pluggable screen stops it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.pipeline import make_pipeline

from finmlsec.attacks import ATTACKS, AttackData, Labeled
from finmlsec.attacks.feedback_loop import craft_reports
from finmlsec.datasets import load
from finmlsec.defences.feedback_screen import FeedbackScreen
from finmlsec.errors import ConfigError
from finmlsec.schema import preprocessor
from finmlsec.targets.oracle import Oracle


@pytest.fixture(scope="module")
def loop() -> dict:
    ds = load("german_credit")
    train, rest = ds.split(0.3, seed=0)
    population, test = rest.split(0.5, seed=0)

    def factory() -> object:
        enc = preprocessor(ds.schema, categories="data", scale=False)
        return make_pipeline(enc, GradientBoostingClassifier(n_estimators=50, random_state=0))

    deployed = factory().fit(train.X, train.y)
    rejected = test.X[deployed.predict(test.X) == 0].reset_index(drop=True)
    data = AttackData(schema=ds.schema, train=Labeled(train.X, train.y),
                      population=Labeled(population.X, population.y),
                      test=Labeled(test.X, test.y), model_factory=factory,
                      victims=Labeled(rejected.iloc[:1]))
    return {"data": data, "deployed": deployed, "ds": ds, "rejected": rejected}


def test_target_flips_with_at_most_five_percent_poison(loop: dict) -> None:
    data = loop["data"]
    att = ATTACKS.get("poisoning.feedback_loop")(target_class="good", reports_per_round=2,
                                                 max_poison_share=0.05)
    r = att.run(Oracle(loop["deployed"], access="label"), data)
    assert r.metrics["flipped"] == 1.0 and r.success == 1.0
    assert 1 <= r.metrics["rounds_to_flip"] <= att.max_rounds
    assert 0 < r.metrics["poison_share_train"] <= 0.05
    assert r.metrics["poisoned_accepted"] == r.metrics["poisoned_submitted"]
    assert r.metrics["benign_accepted"] > 0  # honest users reported errors too
    assert "collateral_changed" in r.metrics and r.metrics["collateral_changed"] < 0.2
    final = data.model_factory().fit(data.train.X, data.train.y)
    assert final.predict(data.victims.X)[0] == 0  # the caller's data was not modified
    assert len(r.curves["loop"]["round"]) == r.metrics["rounds_run"]


class RejectApprovalClaims:
    """A crude screen: refuses every report that claims the applicant should be approved."""

    def __init__(self) -> None:
        self.calls = 0

    def screen(self, X: object, y: np.ndarray) -> np.ndarray:
        self.calls += 1
        return np.asarray(y) != 1


def test_screen_plugs_in_and_stops_the_attack(loop: dict) -> None:
    screen = RejectApprovalClaims()
    att = ATTACKS.get("poisoning.feedback_loop")(target_class="good", max_rounds=4, screen=screen)
    r = att.run(Oracle(loop["deployed"], access="label"), loop["data"])
    assert screen.calls == r.metrics["rounds_run"] == 4
    assert r.metrics["flipped"] == 0.0 and r.metrics["poisoned_accepted"] == 0
    assert r.metrics["poisoned_submitted"] == 8
    assert r.params["screen"] == "RejectApprovalClaims"
    assert r.to_json()


def test_crafted_reports_are_valid_near_copies(loop: dict) -> None:
    ds = loop["ds"]
    profile = loop["rejected"].iloc[:1]
    reps = craft_reports(ds.schema, profile, 6, 1, np.random.default_rng(0), None,
                         exact_first=True)
    assert ds.schema.is_valid(reps).all()
    diff = (reps.astype(str) != profile.astype(str).iloc[[0] * 6].reset_index(drop=True))
    assert diff.sum(axis=1).tolist()[0] == 0 and (diff.sum(axis=1)[1:] <= 1).all()
    for f in ds.schema.features:
        if not f.mutable:
            assert (diff[f.name] == 0).all()


def test_bad_screen_and_parameters(loop: dict) -> None:
    oracle = Oracle(loop["deployed"], access="label")
    with pytest.raises(ConfigError, match="'screen' parameter of FeedbackLoopPoisoning"):
        ATTACKS.get("poisoning.feedback_loop")(screen=object()).run(oracle, loop["data"])
    with pytest.raises(ConfigError, match="'screen' parameter of FeedbackLoopPoisoning"):
        ATTACKS.get("poisoning.feedback_loop")(screen="feedback_screen").run(oracle, loop["data"])
    with pytest.raises(ConfigError, match="'max_poison_share' parameter"):
        ATTACKS.get("poisoning.feedback_loop")(max_poison_share=0).run(oracle, loop["data"])


def test_the_feedback_screen_fitted_on_the_training_data_screens(loop: dict) -> None:
    data = loop["data"]
    screen = FeedbackScreen().fit(data.train.X, data.train.y)
    att = ATTACKS.get("poisoning.feedback_loop")(target_class="good", max_rounds=2,
                                                 screen=screen)
    r = att.run(Oracle(loop["deployed"], access="label"), replace(data, victims=Labeled(
        loop["rejected"].iloc[1:2].reset_index(drop=True))))
    rejected = (r.metrics["poisoned_submitted"] - r.metrics["poisoned_accepted"]
                + r.metrics["benign_submitted"] - r.metrics["benign_accepted"])
    assert rejected > 0 and r.params["screen"] == "FeedbackScreen"


class _DropCrafted:
    """A screen that rejects the first ``k`` reports of each round (the loop submits the crafted
    ones first) and accepts the honest ones."""

    def __init__(self, k: int) -> None:
        self.k = k

    def screen(self, X: object, y: np.ndarray) -> np.ndarray:
        ok = np.ones(len(y), dtype=bool)
        ok[: self.k] = False
        return ok


def test_a_flip_the_honest_reports_make_alone_is_not_the_attackers_success() -> None:
    import pandas as pd
    from sklearn.tree import DecisionTreeClassifier

    from finmlsec.datasets.schema_infer import infer_schema

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.integers(0, 50, 300), "b": rng.integers(0, 50, 300)})
    y = (X.a > 25).astype(int).to_numpy()
    # honest users whose true outcome is 1 where the model says 0: their reports alone move the
    # boundary over the attacker's profile (a = 10)
    pop = pd.DataFrame({"a": np.repeat([9, 10, 11], 25), "b": np.tile(np.arange(0, 50, 2), 3)})
    data = AttackData(train=Labeled(X, y), schema=infer_schema(X).schema,
                      model_factory=lambda: DecisionTreeClassifier(random_state=0),
                      population=Labeled(pop, np.ones(len(pop), dtype=int)),
                      victims=Labeled(pd.DataFrame({"a": [10], "b": [20]})),
                      test=Labeled(X, y))
    oracle = Oracle(DecisionTreeClassifier(random_state=0).fit(X, y))
    att = ATTACKS.get("poisoning.feedback_loop")
    r = att(target_class=1, benign_per_round=20, screen=_DropCrafted(2)).run(oracle, data)
    assert r.metrics["flipped"] == 1.0 and r.metrics["poisoned_accepted"] == 0
    assert r.metrics["flipped_without_attacker"] == 1.0 and r.success == 0.0
    assert any("without the attacker's reports flips it too" in n for n in r.notes)
    # without honest reports the same attacker's flip is its own
    r = att(target_class=1, benign_per_round=0).run(oracle, data)
    assert r.success == 1.0 and r.metrics["flipped_without_attacker"] == 0.0 and not r.notes


def test_a_flip_on_a_model_without_sample_weights_is_counted_as_the_attackers() -> None:
    """A learner that takes no sample weights cannot be refitted like for like without the
    attacker's rows (fewer rows, other draws): its flip is the attacker's, with the reason, so a
    defence never gets credit for a flip the test cannot attribute."""
    import pandas as pd
    from sklearn.neighbors import KNeighborsClassifier

    from finmlsec.attacks.poisoning import weighs_rows
    from finmlsec.datasets.schema_infer import infer_schema

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.integers(0, 50, 300), "b": rng.integers(0, 50, 300)})
    y = (X.a > 25).astype(int).to_numpy()
    pop = pd.DataFrame({"a": rng.integers(0, 50, 60), "b": rng.integers(0, 50, 60)})
    data = AttackData(train=Labeled(X, y), schema=infer_schema(X).schema,
                      model_factory=lambda: KNeighborsClassifier(n_neighbors=3),
                      population=Labeled(pop, (pop.a > 25).astype(int).to_numpy()),
                      victims=Labeled(pd.DataFrame({"a": [20], "b": [20]})),
                      test=Labeled(X, y))
    assert not weighs_rows(KNeighborsClassifier())
    oracle = Oracle(KNeighborsClassifier(n_neighbors=3).fit(X, y))
    r = ATTACKS.get("poisoning.feedback_loop")(target_class=1, benign_per_round=10).run(oracle, data)
    assert r.metrics["flipped"] == 1.0 and r.metrics["poisoned_accepted"] > 0
    assert r.success == 1.0 and r.metrics["flipped_without_attacker"] == 0.0
    assert any("cannot be tested like for like" in n for n in r.notes), r.notes


def test_a_bank_pipeline_on_class_names_is_refitted_like_for_like() -> None:
    """A bank's pipeline trained on class names ('accept', 'reject') reaches the attacks wrapped
    so that it trains on them (AsTrained), and under the bank's cut-off (Thresholded); both pass
    sample weights on to the pipeline's last step, so the loop's flips are tested against the
    same rows without the attacker's reports, not counted as the attacker's for want of weights
    (the wrapper's own fit signature has no sample_weight)."""
    import pandas as pd
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    from finmlsec.attacks.poisoning import weighs_rows
    from finmlsec.datasets.schema_infer import infer_schema
    from finmlsec.targets.cutoff import Thresholded
    from finmlsec.targets.typed import AsTrained

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.integers(0, 50, 300), "b": rng.integers(0, 50, 300)})
    y = (X.a > 25).astype(int).to_numpy()  # 0 reject, 1 accept: the scan's label indices
    pop = pd.DataFrame({"a": rng.integers(0, 50, 60), "b": rng.integers(0, 50, 60)})

    def factory() -> AsTrained:
        return AsTrained(None, make_pipeline(StandardScaler(),
                                             DecisionTreeClassifier(random_state=0)),
                         labels=["reject", "accept"])

    assert weighs_rows(factory()) and weighs_rows(Thresholded(factory(), 0.5, 0))
    assert not weighs_rows(AsTrained(None, make_pipeline(StandardScaler(), _Unweighted())))
    data = AttackData(train=Labeled(X, y), schema=infer_schema(X).schema, model_factory=factory,
                      population=Labeled(pop, (pop.a > 25).astype(int).to_numpy()),
                      victims=Labeled(pd.DataFrame({"a": [20], "b": [20]})),
                      test=Labeled(X, y))
    oracle = Oracle(factory().fit(X, y))
    r = ATTACKS.get("poisoning.feedback_loop")(target_class=1, benign_per_round=10).run(oracle, data)
    assert r.metrics["flipped"] == 1.0
    assert not any("cannot be tested like for like" in n for n in r.notes), r.notes


class _Unweighted:
    """A learner whose fit takes no sample weights."""

    def fit(self, X: object, y: object) -> _Unweighted:
        return self


def test_without_target_class_the_loop_aims_at_the_schemas_favourable_class(loop: dict) -> None:
    """With no ``target_class`` the attacker wants the schema's favourable decision: an approved
    applicant ahead of the victims is passed over (the thorough scan, with no victim limit, gave
    the loop the held-out records in their own order, and it tried to get an approved applicant
    refused: success 0 where quick and standard flipped a refused one)."""
    import pandas as pd

    data, deployed, test = loop["data"], loop["deployed"], loop["data"].test
    approved = test.X[deployed.predict(test.X) == 1].reset_index(drop=True)
    first_approved = pd.concat([approved.iloc[:1], loop["rejected"].iloc[:1]], ignore_index=True)
    att = ATTACKS.get("poisoning.feedback_loop")(max_rounds=6, benign_per_round=0)
    oracle = Oracle(deployed, access="label")
    r = att.run(oracle, replace(data, victims=Labeled(first_approved)))
    alone = att.run(oracle, data)  # the refused applicant alone
    assert r.params["target_class"] == "good"
    assert r.metrics == alone.metrics and r.success == alone.success == 1.0


# -- several targets ------------------------------------------------------------------------------
def _branches(sizes: dict[str, int], learner: object) -> dict:
    """Applicants in branches of the given sizes, every one rejected in the small branches (the
    model reads the branch only): a tree turns a branch's decision once the copies claiming
    approval outnumber its rejections, so the small branches flip within the budget and the large
    ones do not."""
    import pandas as pd
    from sklearn.base import clone
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder

    from finmlsec.datasets.schema_infer import infer_schema

    rng = np.random.default_rng(0)
    cells = [c for c, n in sizes.items() for _ in range(n)]
    X = pd.DataFrame({"branch": cells, "age": rng.integers(20, 70, len(cells))})
    y = np.zeros(len(cells), dtype=int)
    y[rng.permutation(len(cells))[:60]] = 1
    y[X.branch.map(sizes).to_numpy() < 10] = 0

    def factory() -> object:
        return make_pipeline(ColumnTransformer([("c", OneHotEncoder(), ["branch"])]),
                             clone(learner))

    victims = pd.DataFrame({"branch": list(sizes), "age": 40})
    data = AttackData(train=Labeled(X, y), schema=infer_schema(X).schema, model_factory=factory,
                      victims=Labeled(victims), test=Labeled(X, y))
    return {"data": data, "oracle": Oracle(factory().fit(X, y)), "victims": victims}


def test_some_targets_flip_and_the_success_is_their_share_with_its_interval() -> None:
    """Six rejected applicants, two in branches of 6 records (8 exact copies in 4 rounds turn
    them), four in branches of 60-80: the success is 2 of 6, not one applicant's yes or no, and
    its level follows the share (medium), where the first small-branch applicant alone reads
    high."""
    from scipy.stats import binomtest
    from sklearn.tree import DecisionTreeClassifier

    from finmlsec.scan.decide import few_victims, figure, risk_level

    s = _branches({"p": 6, "q": 6, "r": 60, "s": 80, "t": 80, "u": 80},
                  DecisionTreeClassifier(random_state=0))
    att = ATTACKS.get("poisoning.feedback_loop")
    kw = dict(target_class=1, benign_per_round=0, max_rounds=4, fields_varied=0)
    r = att(n_targets=6, **kw).run(s["oracle"], s["data"])
    assert r.metrics["n_targets"] == 6 and r.metrics["flipped_by_attacker"] == 2
    assert r.success == pytest.approx(2 / 6)
    assert r.details["counted"] == [True, True, False, False, False, False]
    assert r.details["flipped_round"][:2] == [4, 4]  # 8 copies outvote 6 rejections
    ci = binomtest(2, 6).proportion_ci(method="exact")  # Clopper-Pearson, scipy's own
    assert (r.metrics["success_ci_low"], r.metrics["success_ci_high"]) == pytest.approx(
        (ci.low, ci.high))
    assert any(f"interval {ci.low:.2f}-{ci.high:.2f}" in n for n in r.notes), r.notes
    out = [{"status": "done", "result": r.to_dict()}]
    fig = figure(out)
    assert fig["trials"] == 6 and risk_level(fig["success"]) == "medium"
    assert few_victims(out)[0].startswith("measured on 6 target(s) only: 2 succeeded")
    one = att(n_targets=1, **kw).run(s["oracle"], replace(s["data"], victims=Labeled(
        s["victims"].iloc[:1])))
    assert one.success == 1.0 and risk_level(one.success) == "high"


def test_targets_are_drawn_with_the_seed_among_the_rejected(loop: dict) -> None:
    data = replace(loop["data"], victims=Labeled(loop["rejected"]))
    oracle = Oracle(loop["deployed"], access="label")
    att = ATTACKS.get("poisoning.feedback_loop")
    kw = dict(target_class="good", n_targets=4, max_rounds=1, benign_per_round=0)
    a, b = (att(seed=0, **kw).run(oracle, data) for _ in range(2))
    c = att(seed=1, **kw).run(oracle, data)
    assert a.details["targets"] == b.details["targets"] and a.success == b.success
    assert len(set(a.details["targets"])) == 4 and a.details["targets"] != c.details["targets"]
    assert max(a.details["targets"]) < len(loop["rejected"])
    assert a.metrics["poisoned_submitted"] == 4 * 2  # each target reports, one round
    assert a.success == a.metrics["flipped_by_attacker"] / 4


def test_a_target_only_the_other_targets_reports_flip_is_not_counted() -> None:
    """A logistic regression shares its intercept between branches: every target's reports
    claiming approval raise it for all, and the shared campaign decides some targets as wanted
    that their own reports do not turn (the same rows without the others' reports; each run
    alone confirms it): those are not the attack's success."""
    from sklearn.linear_model import LogisticRegression

    s = _branches({"p": 6, "q": 6, "r": 6, "s": 80, "t": 80, "u": 80}, LogisticRegression())
    att = ATTACKS.get("poisoning.feedback_loop")
    kw = dict(target_class=1, benign_per_round=0, max_rounds=4, fields_varied=0)
    r = att(n_targets=6, **kw).run(s["oracle"], s["data"])
    others = [t for t, b in enumerate(r.details["flipped_by_other_targets"]) if b]
    assert others and r.metrics["flipped_by_other_targets"] == len(others)
    assert not any(r.details["counted"][t] for t in others)
    assert r.success == sum(r.details["counted"]) / 6
    assert any("only with other targets' reports" in n for n in r.notes)
    for t in others:
        alone = att(n_targets=1, **kw).run(s["oracle"], replace(s["data"], victims=Labeled(
            s["victims"].iloc[[t]].reset_index(drop=True))))
        assert alone.success == 0.0
