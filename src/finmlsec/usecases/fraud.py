"""Card-fraud detection on the bank's transactions (paper, section IV.B.4; type 7).

Trains, on the seeded card-transaction simulator (``card_fraud``: 50,000 transactions, 0.2%
fraud), a gradient-boosting classifier (histogram gradient boosting over one-hot merchant
categories) and an unsupervised isolation forest on the same features, both saved as skops (see
:data:`NO_ONNX` and :data:`NO_ONNX_FOREST` for why not ONNX). Quality: PR
AUC (average precision) on the held-out split, reported against the base rate (the PR AUC of a
random ranking); ROC AUC alongside.

Example:
    >>> roles_of(NAME)["roles"]["model_generator"], roles_of(NAME)["roles"]["system_user"]
    ('vendor', 'bank')
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from finmlsec.errors import ConfigError
from finmlsec.usecases.base import BuildResult, ModelInfo, finish, roles_of, save_skops

NAME = "fraud"
#: why the gradient-boosting model has no ONNX file
NO_ONNX = (
    "No ONNX file: skl2onnx 1.20 cannot convert a HistGradientBoostingClassifier fitted by "
    "scikit-learn 1.9 (it writes booleans where ONNX expects integers); skops only."
)
#: why the isolation forest has no ONNX file
NO_ONNX_FOREST = (
    "No ONNX file: skl2onnx's isolation-forest converter takes time quadratic in the number of "
    "trees (about half a minute for 100 trees), too slow for a two-minute build; ONNX outlier "
    "detectors are supported by the loader (targets/onnx_model.py)."
)
DATASET = "card_fraud"

def detection_metrics(scores: np.ndarray, y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """PR AUC against the base rate, ROC AUC, precision and recall of the decisions."""
    from sklearn.metrics import (
        average_precision_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    base = float(np.mean(y))
    pr_auc = float(average_precision_score(y, scores))
    return {
        "pr_auc": pr_auc,
        "base_rate": base,
        "pr_auc_lift": pr_auc / base if base else float("nan"),
        "roc_auc": float(roc_auc_score(y, scores)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "n_positive": float(np.sum(y)),
    }


def build(out: Path, *, seed: int = 0) -> BuildResult:
    """Train, save and describe the fraud models under ``out``."""
    from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest
    from sklearn.pipeline import make_pipeline
    from threadpoolctl import threadpool_limits

    from finmlsec.datasets import load
    from finmlsec.datasets.splits import split_three
    from finmlsec.schema import preprocessor

    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    ds = load(DATASET)
    train, test, pop = split_three(ds, seed)
    models = []
    with threadpool_limits(1):  # OpenMP over-subscription makes shared machines crawl
        gbm = make_pipeline(preprocessor(ds.schema, categories="data", scale=False), HistGradientBoostingClassifier(
            max_iter=100, learning_rate=0.1, early_stopping=False, min_samples_leaf=10,
            l2_regularization=1.0, random_state=seed,
        )).fit(train.X, train.y)
        models.append(ModelInfo(
            "gbm", "one-hot merchant category + histogram gradient boosting (100 iterations)",
            {"skops": save_skops(gbm, out, "gbm")},
            detection_metrics(gbm.predict_proba(test.X)[:, 1], test.y, gbm.predict(test.X)),
            notes="Supervised: trained on labelled frauds. PR AUC is compared with the base "
            "rate, the PR AUC of a random ranking. " + NO_ONNX,
        ))
        iso = make_pipeline(preprocessor(ds.schema, categories="data", scale=False), IsolationForest(
            n_estimators=100, contamination=0.01, random_state=seed,
        )).fit(train.X)
        iso_pred = (iso.predict(test.X) == -1).astype(int)
        models.append(ModelInfo(
            "isolation_forest", "one-hot merchant category + isolation forest (100 trees, "
            "contamination 1%)",
            {"skops": save_skops(iso, out, "isolation_forest")},
            detection_metrics(-iso.decision_function(test.X), test.y, iso_pred),
            notes="Unsupervised: never sees the labels; loaded as a two-class target "
            "(0 normal, 1 anomaly) whose probability is a monotone map of the anomaly score. "
            + NO_ONNX_FOREST,
        ))
    return finish(
        out, usecase=NAME, title="Card-fraud detection", roles=roles_of(NAME), dataset=ds,
        splits={"train": train, "test": test, "population": pop}, models=tuple(models),
        seed=seed, started=started,
        intended_use="Flags card transactions as fraud for the bank's investigators; the "
        "probability of 'fraud' ranks the transactions to review.",
        limitations="Simulated transactions (seeded generator with card testing, account "
        "takeover and merchant compromise patterns): the fraud patterns are simpler than real "
        "ones, so detection figures are optimistic. With 0.2% fraud the held-out split holds "
        "few frauds: PR AUC varies by several points with the seed.",
    )


#: rows of the spec's scan sample (``data.sample``) in a build at scale: a sample the size of the
#: shipped 50,000-row data set, so the attacks cost what they cost there
SCAN_SAMPLE = 50_000
#: rows of the sample the models of a build at scale train and are evaluated on (half train)
MODEL_SAMPLE = 1_000_000


def _fit_models(train: Any, test: Any, schema: Any, seed: int) -> tuple[tuple[Any, ...],
                                                                       list[dict[str, float]]]:
    from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest
    from sklearn.pipeline import make_pipeline

    from finmlsec.schema import preprocessor

    gbm = make_pipeline(preprocessor(schema, categories="data", scale=False),
                        HistGradientBoostingClassifier(
                            max_iter=100, learning_rate=0.1, early_stopping=False,
                            min_samples_leaf=10, l2_regularization=1.0, random_state=seed,
                        )).fit(train.X, train.y)
    iso = make_pipeline(preprocessor(schema, categories="data", scale=False), IsolationForest(
        n_estimators=100, contamination=0.01, random_state=seed)).fit(train.X)
    return (gbm, iso), [
        detection_metrics(gbm.predict_proba(test.X)[:, 1], test.y, gbm.predict(test.X)),
        detection_metrics(-iso.decision_function(test.X), test.y,
                          (iso.predict(test.X) == -1).astype(int)),
    ]


def build_at_scale(out: Path, *, rows: int, seed: int = 0, part_rows: int = 500_000,
                   sample: int = SCAN_SAMPLE, model_sample: int = MODEL_SAMPLE) -> BuildResult:
    """The fraud use case on ``rows`` simulated transactions written to Parquet
    (``out/transactions/part-*.parquet``, in parts of ``part_rows``; memory bounded by a part,
    see :func:`finmlsec.datasets.card_fraud.write_parquet`).

    The models are the same as :func:`build`'s, trained on the train rows of a seeded, stratified
    sample of ``model_sample`` rows read back in chunks (:mod:`finmlsec.datasets.chunked`; half
    of it is train, 500,000 rows by default: gradient boosting on all of 10 million rows would
    take the better part of an hour on one core) and evaluated on its test rows. The spec reads
    the Parquet directory with ``data.sample: sample``; the scan's train sample is a subset of the
    models' training rows (same seed: bottom-k samples nest), so its members are members.
    """
    from finmlsec.datasets.card_fraud import SCHEMA, write_parquet
    from finmlsec.datasets.splits import load_sampled
    from finmlsec.usecases.base import write_card, write_spec

    started = time.perf_counter()
    if sample > model_sample:
        raise ConfigError(f"the scan sample ({sample:,} rows) must not exceed the models' "
                          f"training sample ({model_sample:,} rows)")
    out.mkdir(parents=True, exist_ok=True)
    written = write_parquet(out / "transactions", rows, seed=seed, part_rows=part_rows)
    (out / "schema.yaml").write_text(yaml.safe_dump(SCHEMA.model_dump(mode="json"),
                                                    sort_keys=False), encoding="utf-8")
    dataset, train, test, pop = load_sampled(out / "transactions", SCHEMA.target or "is_fraud",
                                             SCHEMA, sample=model_sample, seed=seed)
    info = train.extra["sample"]
    (gbm, iso), metrics = _fit_models(train, test, dataset.schema, seed)
    trained_on = (f"Trained on {len(train):,} train rows of a seeded, stratified sample of "
                  f"{info.rows:,} Parquet rows ({sum(info.kept.values()):,} sampled; metrics "
                  f"on {len(test):,} test rows of the sample). ")
    models = (
        ModelInfo("gbm", "one-hot merchant category + histogram gradient boosting (100 "
                  "iterations)", {"skops": save_skops(gbm, out, "gbm")}, metrics[0],
                  notes=trained_on + NO_ONNX),
        ModelInfo("isolation_forest", "one-hot merchant category + isolation forest (100 "
                  "trees, contamination 1%)",
                  {"skops": save_skops(iso, out, "isolation_forest")}, metrics[1],
                  notes=trained_on + NO_ONNX_FOREST),
    )
    data = {"path": "transactions", "label": SCHEMA.target, "schema": "schema.yaml",
            "seed": seed, "sample": sample}
    roles = roles_of(NAME)
    specs: dict[str, Path] = {}
    for i, m in enumerate(models):
        fname = "spec.yaml" if i == 0 else f"spec_{m.name}.yaml"
        header = (f"Card-fraud detection at scale ({rows:,} transactions in Parquet): written by "
                  f"`finmlsec demo build fraud --rows {rows}`.\nModel: {m.name} "
                  f"({m.algorithm}). The scan reads the data in chunks and keeps a seeded, "
                  f"stratified sample of {sample:,} rows.")
        specs[m.name] = write_spec(out / fname, roles, next(iter(m.formats.values())), data,
                                   header=header)
    card_md, card_json = write_card(
        out, usecase=NAME, title=f"Card-fraud detection at scale ({rows:,} transactions)",
        dataset=dataset, splits={"train": train, "test": test, "population": pop},
        models=models,
        intended_use="Flags card transactions as fraud for the bank's investigators.",
        limitations="Simulated transactions; models trained on a sample of the train split (see "
        "the notes); the split sizes above are those of the sample.",
        extra={"data": {"written": written, "sample": info.to_dict()}},
    )
    return BuildResult(usecase=NAME, out=out, spec=out / "spec.yaml", models=models,
                       splits={"data": "transactions"}, card_md=card_md, card_json=card_json,
                       seconds=time.perf_counter() - started, specs=specs)
