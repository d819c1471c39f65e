from __future__ import annotations

import collections

import numpy as np
import pytest

from finmlsec.datasets import _build_intents, load
from finmlsec.datasets._files import data_file
from finmlsec.datasets.bank_intents import read_records


@pytest.fixture(scope="module")
def ds():
    return load("bank_intents")


def test_size_and_intents(ds) -> None:
    assert ds.kind == "text" and ds.schema is None
    assert len(ds) >= 1500 and len(ds.X) == len(ds.y)
    assert len(ds.classes) >= 15
    for name in ("check_balance", "lost_or_stolen_card", "transfer_limits", "loan_rates",
                 "account_fees", "opening_hours", "activate_card", "change_address",
                 "mortgage_inquiry", "report_fraud", "international_transfer", "reset_pin",
                 "request_statement", "open_account", "close_account", "exchange_rates"):
        assert name in ds.classes
    counts = np.bincount(ds.y, minlength=len(ds.classes))
    assert counts.min() >= 80, dict(zip(ds.classes, counts.tolist()))
    assert all(isinstance(t, str) and t.strip() for t in ds.X)


def test_each_utterance_has_one_label(ds) -> None:
    keys = [t.lower().strip(" ?.!") for t in ds.X]
    assert len(set(keys)) == len(keys)


def test_variants_present() -> None:
    rows = read_records()
    variants = collections.Counter(r["variant"] for r in rows)
    assert set(variants) == {"base", "polite", "typo"}
    assert min(variants.values()) >= 200
    polite = [r["text"].lower() for r in rows if r["variant"] == "polite"]
    assert sum(("thank" in t) or ("hello" in t) or ("please" in t) for t in polite) > 200
    # typo variants contain words that are not in any clean utterance
    clean = {w for r in rows if r["variant"] != "typo" for w in r["text"].lower().split()}
    typo_words = {w for r in rows if r["variant"] == "typo" for w in r["text"].lower().split()}
    assert len(typo_words - clean) > 200


def test_shipped_file_is_reproducible_from_seed() -> None:
    shipped = data_file("bank_intents.jsonl").read_text(encoding="utf-8")
    assert _build_intents.to_jsonl(_build_intents.build(seed=0)) == shipped
    assert _build_intents.build(seed=1, per_intent=20) != _build_intents.build(seed=0, per_intent=20)


def test_builder_writes_file(tmp_path) -> None:
    out = tmp_path / "c.jsonl"
    assert _build_intents.main([str(out)]) == 0
    assert out.read_text(encoding="utf-8") == data_file("bank_intents.jsonl").read_text("utf-8")


def test_learnable_by_a_linear_model(ds) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    tr, te = ds.split(0.3, seed=0)
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2)), LinearSVC(C=1.0))
    model.fit(tr.X, tr.y)
    assert (model.predict(te.X) == te.y).mean() >= 0.9
