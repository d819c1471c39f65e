"""Market anomaly detection as a service (paper, section IV.B.4; type 10).

Detects anomalous trading days in real daily S&P 500 data (``market_anomalies``, shipped by
``arch``; anomalies labelled by a stated k-sigma rule and known stress events): a histogram
gradient-boosting classifier on the eight market features, and an unsupervised isolation forest on
the standardised features. Both are saved as skops (see
:mod:`finmlsec.usecases.fraud` for why not ONNX). Quality: PR AUC on the held-out split
against the base rate; ROC AUC alongside.

Example:
    >>> ROLES["roles"]["system_user"], ROLES["stakes"]["training_data"]
    ('bank', 'public')
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from finmlsec.usecases.base import BuildResult, ModelInfo, finish, save_skops
from finmlsec.usecases.fraud import NO_ONNX, NO_ONNX_FOREST, detection_metrics

NAME = "market-anomaly"
DATASET = "market_anomalies"

#: organisations, roles and stakes as in examples/market_anomaly.yaml
ROLES: dict[str, Any] = {
    "name": "Market anomaly detection service",
    "description": (
        "A vendor detects anomalies in financial-market transactions with a model trained on "
        "public market data; the bank submits its transactions for checking."
    ),
    "organisations": [
        {"id": "vendor", "name": "Anomaly-detection vendor"},
        {"id": "bank", "name": "Bank"},
    ],
    "roles": {
        "training_data_provider": "vendor",
        "system_user": "bank",
        "model_generator": "vendor",
        "model_operator": "vendor",
    },
    "stakes": {
        "training_data": "public",
        "model_value": "low",
        "harm_of_wrong_output": "high",
        "harm_of_outage": "moderate",
        "risk_appetite": "low",
    },
    "deployed_countermeasures": ["gateway_rate_limiting"],
}


def build(out: Path, *, seed: int = 0) -> BuildResult:
    """Train, save and describe the market-anomaly models under ``out``."""
    from sklearn.ensemble import HistGradientBoostingClassifier, IsolationForest
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    from finmlsec.datasets import load
    from finmlsec.scenario import split_three

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
        out, usecase=NAME, title="Market anomaly detection", roles=ROLES, dataset=ds,
        splits={"train": train, "test": test, "population": pop}, models=models,
        seed=seed, started=started,
        intended_use="Flags anomalous market days for the bank's review of its transactions.",
        limitations="Anomalies are labelled by a stated rule (|return| beyond 3.5 standard "
        "deviations of the previous 60 days, plus named stress events), not by analysts; the "
        "held-out split holds fewer than ten anomalies, so PR AUC varies with the seed. Days are "
        "split at random, not by time.",
    )
