"""Market anomaly detection as a service (paper, section IV.B.4; type 10).

Detects anomalous trading days in real daily S&P 500 data (``market_anomalies``, shipped by
``arch``; anomalies labelled by a stated k-sigma rule and known stress events): a histogram
gradient-boosting classifier on the eight market features, and an unsupervised isolation forest on
the standardised features. Both are saved as skops (see
:mod:`finmlsec.usecases.fraud` for why not ONNX). Quality: PR AUC on the held-out split
against the base rate; ROC AUC alongside.

Example:
    >>> roles_of(NAME)["roles"]["system_user"], roles_of(NAME)["stakes"]["training_data"]
    ('bank', 'public')
"""

from __future__ import annotations

import time
from pathlib import Path

from finmlsec.usecases.base import BuildResult, ModelInfo, finish, roles_of, save_skops
from finmlsec.usecases.fraud import NO_ONNX, NO_ONNX_FOREST, detection_metrics

NAME = "market-anomaly"
DATASET = "market_anomalies"

def build(out: Path, *, seed: int = 0) -> BuildResult:
    """Train, save and describe the market-anomaly models under ``out``."""
    from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    from finmlsec.datasets import load
    from finmlsec.datasets.splits import split_three

    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    ds = load(DATASET)
    train, test, pop = split_three(ds, seed)
    with threadpool_limits(1):
        gbm = HistGradientBoostingClassifier(
            max_iter=100, learning_rate=0.1, early_stopping=False, min_samples_leaf=5,
            l2_regularization=1.0, random_state=seed,
        ).fit(train.X, train.y)
        iso = make_pipeline(StandardScaler(), IsolationForest(
            n_estimators=100, contamination=0.01, random_state=seed,
        )).fit(train.X)
    models = (
        ModelInfo(
            "gbm", "histogram gradient boosting (100 iterations)",
            {"skops": save_skops(gbm, out, "gbm")},
            detection_metrics(gbm.predict_proba(test.X)[:, 1], test.y, gbm.predict(test.X)),
            notes="Supervised on the labelled anomalies; PR AUC is compared with the base "
            "rate. " + NO_ONNX,
        ),
        ModelInfo(
            "isolation_forest", "standardisation + isolation forest (100 trees, contamination 1%)",
            {"skops": save_skops(iso, out, "isolation_forest")},
            detection_metrics(-iso.decision_function(test.X), test.y,
                              (iso.predict(test.X) == -1).astype(int)),
            notes="Unsupervised: flags unusual days, of which the labelled anomalies are a "
            "subset, so its precision against the labels is low by design. " + NO_ONNX_FOREST,
        ),
    )
    return finish(
        out, usecase=NAME, title="Market anomaly detection", roles=roles_of(NAME), dataset=ds,
        splits={"train": train, "test": test, "population": pop}, models=models,
        seed=seed, started=started,
        intended_use="Flags anomalous market days for the bank's review of its transactions.",
        limitations="Anomalies are labelled by a stated rule (|return| beyond 3.5 standard "
        "deviations of the previous 60 days, plus named stress events), not by analysts; the "
        "held-out split holds fewer than ten anomalies, so PR AUC varies with the seed. Days are "
        "split at random, not by time.",
    )
