"""Text evasion of the chatbot's intent classifier (bank_intents)."""

from __future__ import annotations

from sklearn.pipeline import make_pipeline

from finmlsec.attacks import ATTACKS, AttackData, Labeled
from finmlsec.attacks.evasion_text import normalise, perturb_word
from finmlsec.datasets import load
from finmlsec.targets.oracle import Oracle


def test_text_evasion_on_intent_classifier() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    ds = load("bank_intents")
    train, test = ds.split(0.3, seed=0)
    model = make_pipeline(TfidfVectorizer(sublinear_tf=True),
                          LogisticRegression(max_iter=500)).fit(train.X, train.y)
    victims = Labeled(test.X[:60], test.y[:60])
    r = ATTACKS.get("evasion.text")().run(Oracle(model, input_kind="text"),
                                           AttackData(victims=victims))
    assert r.metrics["success_rate"] >= 0.4 and r.metrics["validity_rate"] == 1.0
    assert r.metrics["mean_words_changed"] <= 3
    # random perturbations of as many words rarely change the intent: the lift stays high
    assert r.metrics["baseline_rate"] <= 0.2 and r.metrics["baseline_draws"] == 100
    assert r.success == r.metrics["lift"] >= 0.4 and r.metrics["lift_p"] < 0.05
    # homoglyphs and invisible characters only: the reader sees the same text
    att = ATTACKS.get("evasion.text")(operations=("homoglyph", "invisible"), max_words=3)
    out = att.generate(Oracle(model, input_kind="text"), victims.X)
    assert out.success.mean() >= 0.2
    assert all(normalise(a) == normalise(b) for a, b in zip(out.X_adv, victims.X, strict=True))
    assert all(a != b for a, b, s in zip(out.X_adv, victims.X, out.success, strict=True) if s)


def test_perturbations() -> None:
    assert perturb_word("balance", "typo") != "balance"
    assert sorted(perturb_word("balance", "typo")) == sorted("balance")
    assert normalise(perturb_word("account", "homoglyph")) == "account"
    assert normalise(perturb_word("account", "invisible")) == "account"
    assert perturb_word("Money", "synonym") == "Funds"
    assert perturb_word("zzz", "synonym") == "zzz"
