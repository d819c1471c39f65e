"""Adversarial training and defensive distillation, with the project's evasion attacks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from finmlsec.attacks.base import ATTACKS
from finmlsec.defences import DEFENCES, apply
from finmlsec.defences.adversarial import AdversarialTraining
from finmlsec.defences.distill import DefensiveDistillation
from finmlsec.errors import CapabilityError, ConfigError
from finmlsec.schema import Feature, FeatureSchema
from finmlsec.targets.oracle import Oracle

SCHEMA = FeatureSchema(features=(
    Feature(name="history", type="integer", min=0, max=100, immutable=True),
    Feature(name="channel", type="integer", min=0, max=100),
))


def _spurious(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The label depends on an immutable field; an actionable field is spuriously correlated
    with it in the training data, so an unguarded tree may rely on it."""
    rng = np.random.default_rng(seed)
    history = rng.integers(0, 101, n)
    y = (history > 50).astype(int)
    channel = np.clip(y * 55 + rng.integers(0, 46, n), 0, 100)
    return pd.DataFrame({"history": history, "channel": channel}), y


def _success(model, X, y) -> float:
    rejected = np.flatnonzero((model.predict(X) == 0) & (y == 0))
    out = ATTACKS.get("evasion.constrained")(target_class=1, max_changes=1).generate(
        Oracle(model, access="label"), X.iloc[rejected], None, SCHEMA)
    return float(np.mean(out.success & out.valid))


def test_registered():
    assert DEFENCES.get("adversarial_training") is AdversarialTraining
    assert DEFENCES.get("defensive_distillation") is DefensiveDistillation
    for cls in (AdversarialTraining, DefensiveDistillation):
        assert cls.counters == frozenset({"induce_false_prediction"})


def test_adversarial_training_removes_a_spurious_shortcut_for_a_tree():
    X, y = _spurious(400, 0)
    Xt, yt = _spurious(300, 1)
    plain = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y)
    before = _success(plain, Xt, yt)
    at = AdversarialTraining(schema=SCHEMA, rounds=3, n_per_round=100,
                             attack_params={"target_class": 1, "max_changes": 1}, random_state=0)
    hard = apply(at, DecisionTreeClassifier(max_depth=3, random_state=0), X, y)
    after = _success(hard, Xt, yt)
    assert before >= 0.95 and after <= 0.1
    assert np.mean(hard.predict(Xt) == yt) >= np.mean(plain.predict(Xt) == yt) - 0.02
    assert hard.history_[0].n_added > 0 and hard.n_augmented_ >= hard.history_[0].n_added
    assert not hasattr(at, "history_")  # apply fits a clone


def test_adversarial_training_refuses_a_non_evasion_attack():
    X, y = _spurious(100, 0)
    with pytest.raises(ConfigError, match="must name an evasion attack"):
        apply(AdversarialTraining(attack="membership.metric"), LogisticRegression(), X, y)
    with pytest.raises(ConfigError, match="'rounds' parameter of AdversarialTraining"):
        apply(AdversarialTraining(rounds=-1), LogisticRegression(), X, y)


def test_distillation_needs_a_torch_classifier():
    X, y = _spurious(50, 0)
    with pytest.raises(CapabilityError, match="needs a TorchClassifier"):
        apply(DefensiveDistillation(), LogisticRegression(), X, y)
    with pytest.raises(ConfigError, match="'temperature' parameter"):
        apply(DefensiveDistillation(temperature=0.5), LogisticRegression(), X, y)


def test_distillation_masks_the_loss_gradient_on_digits():
    from finmlsec.datasets import load
    from finmlsec.targets.torch_estimator import TorchClassifier

    d = load("ocr_digits")
    X, y = d.X[:600].astype(np.float32), d.y[:600]
    Xt, yt = d.X[1500:1700].astype(np.float32), d.y[1500:1700]
    net = TorchClassifier(kwargs={"in_features": 64, "n_classes": 10, "hidden": [64]},
                          epochs=40, random_state=0)
    plain = net.fit(X, y)
    student = apply(DefensiveDistillation(temperature=50), net, X, y).estimator_
    # a little accuracy is lost on this small training set (bench: 0.942 vs 0.984 on 1,300)
    assert np.mean(student.predict(Xt) == yt) >= np.mean(plain.predict(Xt) == yt) - 0.1
    g_plain = np.median(np.abs(plain.gradient(Xt, yt)).sum(axis=1))
    g_dist = np.median(np.abs(student.gradient(Xt, yt)).sum(axis=1))
    assert g_dist < g_plain / 10  # saturated softmax: the gradient attacks follow vanishes


# -- budgets (tabular) ----------------------------------------------------------------------------
def test_budget_schema_narrows_around_the_record():
    from finmlsec.defences.adversarial import budget_schema

    schema = FeatureSchema(features=(
        Feature(name="amount", type="integer", min=0, max=1000),
        Feature(name="level", type="categorical", categories=("a", "b", "c", "d")),
        Feature(name="age", type="integer", min=18, max=90, immutable=True),
        Feature(name="other", type="numeric", min=0, max=1),
    ))
    rec = {"amount": 105, "level": "b", "age": 40, "other": 0.5}
    s = budget_schema(schema, rec, {"amount": 0.1, "level": 1, "age": 0.5})
    assert (s["amount"].min, s["amount"].max) == (95, 115)  # 94.5 / 115.5 rounded inwards
    assert s["level"].categories == ("a", "b", "c")
    assert not s["age"].mutable and not s["other"].mutable  # immutable stays; not budgeted
    with pytest.raises(ConfigError, match="does not have"):
        budget_schema(schema, rec, {"income": 0.1})
    with pytest.raises(ConfigError, match="must be a number >= 0"):
        budget_schema(schema, rec, {"amount": -1})


def _budget_success(model, X, budget) -> float:
    from finmlsec.defences.adversarial import budget_schema

    won = []
    for i in np.flatnonzero(model.predict(X) == 0)[:60]:
        rec = X.iloc[[i]]
        out = ATTACKS.get("evasion.constrained")(target_class=1, max_changes=1).generate(
            Oracle(model, access="proba"), rec, None, budget_schema(SCHEMA, rec.iloc[0], budget),
            population=X)
        won.append(bool(out.success[0] and out.valid[0]))
    return float(np.mean(won))


def test_adversarial_training_within_a_budget_resists_that_budget():
    X, y = _spurious(400, 0)
    Xt, yt = _spurious(300, 1)
    # channel separates the training classes at ~50 as well as history does; the tree takes it,
    # and doubling channel (a 100% budget) crosses the split for about half the rejected records
    budget = {"channel": 1.0}
    plain = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y)
    before = _budget_success(plain, Xt, budget)
    at = AdversarialTraining(schema=SCHEMA, budget=budget, rounds=2, n_per_round=200,
                             attack_params={"max_changes": 1}, random_state=0)
    hard = apply(at, DecisionTreeClassifier(max_depth=3, random_state=0), X, y)
    after = _budget_success(hard, Xt, budget)
    assert hard.method_used_ == "augment" and hard.n_augmented_ > 0
    assert before >= 0.4 and after <= 0.05
    assert np.mean(hard.predict(Xt) == yt) >= 0.95


def test_adversarial_training_checks_budget_and_method():
    X, y = _spurious(60, 0)
    with pytest.raises(CapabilityError, match="needs tabular records"):
        apply(AdversarialTraining(budget={"channel": 0.1}), LogisticRegression(), X, y)
    with pytest.raises(ConfigError, match="does not have"):
        apply(AdversarialTraining(schema=SCHEMA, budget={"income": 0.1}),
              LogisticRegression(), X, y)
    with pytest.raises(ConfigError, match="'method' parameter"):
        apply(AdversarialTraining(method="madry"), LogisticRegression(), X, y)
    with pytest.raises(CapabilityError, match="method='in_loop'"):
        apply(AdversarialTraining(method="in_loop"), LogisticRegression(), X, y)
    with pytest.raises(ConfigError, match="applies to method='in_loop' only"):
        apply(AdversarialTraining(schema=SCHEMA, loop_params={"steps": 3}),
              LogisticRegression(), X, y)


# -- PGD inside the training loop (Madry) ---------------------------------------------------------
def _margin_success(model, X, y, eps, steps=30) -> float:
    """PGD on the logit margin (Carlini-Wagner loss): no softmax to mask its gradient."""
    import torch

    x0 = torch.from_numpy(X)
    x, yt = x0.clone(), torch.from_numpy(y.astype(np.int64))
    for _ in range(steps):
        x.requires_grad_(True)
        z = model.target_._logits(x)
        true = z.gather(1, yt[:, None])[:, 0]
        other = z.masked_fill(torch.nn.functional.one_hot(yt, 10).bool(), -1e9).max(1)[0]
        (g,) = torch.autograd.grad((other - true).sum(), x)
        with torch.no_grad():
            x = torch.min(torch.max(x + eps / 8 * g.sign(), x0 - eps), x0 + eps).clamp(0, 1)
    return float(np.mean(model.predict(x.detach().numpy()) != y))


@pytest.fixture
def one_thread():
    """Tiny networks train faster on one thread than on cores shared with other jobs."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_pgd_in_the_training_loop_resists_pgd_and_the_logit_attack(one_thread):
    from finmlsec.datasets import load
    from finmlsec.targets.torch_estimator import TorchClassifier

    d = load("ocr_digits")
    X, y = d.X[:700].astype(np.float32), np.asarray(d.y)[:700]
    Xt, yt = d.X[1500:1700].astype(np.float32), np.asarray(d.y)[1500:1700]
    net = TorchClassifier(kwargs={"in_features": 64, "n_classes": 10, "hidden": [128]},
                          epochs=25, random_state=0)
    eps = 0.2
    at = AdversarialTraining(attack_params={"eps": eps, "iterations": 20}, n_per_round=50,
                             loop_params={"steps": 5}, random_state=0)
    fitted = apply(at, net, X, y)
    hard = fitted.estimator_
    plain = net.fit(X, y)
    assert fitted.method_used_ == "in_loop" and fitted.attack_used_ == "evasion.pgd"
    assert hard.adversarial["eps"] == eps and plain.adversarial is None
    assert fitted.n_augmented_ == 25 * 700 == fitted.history_[0].n_added
    pgd = ATTACKS.get("evasion.pgd")(eps=eps, iterations=20, seed=0)

    def pgd_success(model):
        ok = np.flatnonzero(model.predict(Xt) == yt)
        out = pgd.generate(Oracle(model, access="white_box"), Xt[ok], yt[ok])
        return float(np.mean(out.success)), ok

    p0, ok0 = pgd_success(plain)
    p1, ok = pgd_success(hard)
    m0 = _margin_success(plain, Xt[ok0], yt[ok0], eps)
    m1 = _margin_success(hard, Xt[ok], yt[ok], eps)
    assert p0 >= 0.95 and m0 >= 0.9
    # both attacks fall (robustness, not a masked gradient); 700 images are too few for the
    # bench's figures (0.38 on this MLP with 1,300, 0.22 on the CNN)
    assert p1 <= 0.7 and m1 <= 0.7
    assert np.mean(hard.predict(Xt) == yt) >= np.mean(plain.predict(Xt) == yt) - 0.05


def test_torch_classifier_adversarial_option_is_checked():
    from finmlsec.targets.torch_estimator import TorchClassifier

    X = np.random.default_rng(0).random((20, 4)).astype(np.float32)
    y = np.arange(20) % 2
    kw = {"kwargs": {"in_features": 4, "n_classes": 2}, "epochs": 1, "input_kind": "tabular"}
    for bad, msg in (({"eps": 0}, "'eps' must be a float > 0"),
                     ({"eps": 0.1, "loss": "hinge"}, "'loss' must be"),
                     ({"eps": 0.1, "radius": 1}, "unknown key")):
        with pytest.raises(ConfigError, match=msg):
            TorchClassifier(adversarial=bad, **kw).fit(X, y)
    trades = TorchClassifier(adversarial={"eps": 0.1, "loss": "trades", "steps": 2}, **kw)
    assert trades.fit(X, y).adversarial_examples_ == 20
