"""Customer-inquiry chatbot (paper, section IV.B.2; type 4).

Classifies customers' inquiries into the bank's intents (``bank_intents``: 1,800 utterances over
18 intents written for finmlsec, with paraphrases, typos and politeness variants) with TF-IDF over
words and word pairs and a multinomial logistic regression. Saved as skops and ONNX (the ONNX
tokeniser runs in the "C" locale, so it needs no installed language pack). Quality gate: accuracy
>= 0.90 on held-out utterances.

Example:
    >>> roles_of(NAME)["roles"]["model_operator"], roles_of(NAME)["roles"]["model_generator"]
    ('bank', 'vendor')
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from finmlsec.usecases.base import (
    BuildResult,
    ModelInfo,
    finish,
    roles_of,
    save_onnx_sklearn,
    save_skops,
)

NAME = "chatbot"
DATASET = "bank_intents"
GATE = ("accuracy", 0.90)

def text_metrics(model: Any, X: list[str], y: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    pred = model.predict(X)
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, average="macro")),
        "n_classes": float(len(np.unique(y))),
    }


def build(out: Path, *, seed: int = 0) -> BuildResult:
    """Train, save and describe the intent classifier under ``out``."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from finmlsec.datasets import load
    from finmlsec.datasets.splits import split_three

    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    ds = load(DATASET)
    train, test, pop = split_three(ds, seed)
    tfidf = TfidfVectorizer(ngram_range=(1, 2), lowercase=True)
    model = make_pipeline(tfidf, LogisticRegression(C=10.0, max_iter=3000)).fit(train.X, train.y)
    formats = {
        "skops": save_skops(model, out, "tfidf_logreg", input_kind="text"),
        "onnx": save_onnx_sklearn(model, out, "tfidf_logreg", input_kind="text", sample=train.X,
                                  options={id(tfidf): {"locale": "C"}}),
    }
    info = ModelInfo(
        "tfidf_logreg", "TF-IDF over words and word pairs + multinomial logistic regression "
        "(C=10)", formats, text_metrics(model, test.X, test.y), GATE,
    )
    return finish(
        out, usecase=NAME, title="Customer-inquiry chatbot", roles=roles_of(NAME), dataset=ds,
        splits={"train": train, "test": test, "population": pop}, models=(info,),
        seed=seed, started=started,
        intended_use="Routes a customer's inquiry to one of the bank's intents; the reply for "
        "the intent comes from public product information and staff check doubtful replies.",
        limitations="The corpus was written for finmlsec (templates with paraphrases, typos and "
        "politeness variants), so held-out utterances are close to the training ones: accuracy "
        "on real customers' messages will be lower.",
        extra={"intents": list(ds.classes)},
    )
