"""German-credit targets shared by the confidentiality benchmarks (read-only for other suites).

Same splits and seeds everywhere: 1,000 records, a seeded permutation, the first 500 train the
target (sorted); the other 500 are held out (in random order: the vendored file is ordered). Targets are scikit-learn pipelines on raw records (one-hot
encoding of categoricals with the schema's categories, standard scaling of numbers).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeClassifier

from finmlsec.datasets import load
from finmlsec.schema import FeatureSchema, preprocessor

SEED = 0
N_TRAIN = 500
TARGETS = ("lr", "gb", "rf")
TARGET_NAMES = {
    "lr": "logistic regression",
    "gb": "gradient boosting",
    "rf": "random forest (200 trees)",
    "tree": "decision tree (26 leaves)",
}


def estimator(kind: str, seed: int = SEED) -> Any:
    if kind == "lr":
        return LogisticRegression(max_iter=2000)
    if kind == "gb":
        return GradientBoostingClassifier(random_state=seed)
    if kind == "rf":
        return RandomForestClassifier(n_estimators=200, random_state=seed, n_jobs=1)
    if kind == "tree":
        return DecisionTreeClassifier(max_leaf_nodes=26, random_state=seed)
    raise ValueError(kind)


def factory(kind: str, schema: FeatureSchema, seed: int = SEED) -> Callable[[], Pipeline]:
    def make() -> Pipeline:
        return Pipeline([("prep", preprocessor(schema)), ("model", estimator(kind, seed))])

    return make


@dataclass
class Setup:
    schema: FeatureSchema
    X: pd.DataFrame
    y: np.ndarray
    train_idx: np.ndarray
    held_idx: np.ndarray

    def rows(self, idx: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
        return self.X.iloc[idx].reset_index(drop=True), self.y[idx]


def german_credit(seed: int = SEED, n_train: int = N_TRAIN) -> Setup:
    ds = load("german_credit")
    perm = np.random.default_rng(seed).permutation(len(ds))
    assert ds.schema is not None
    return Setup(ds.schema, ds.X.reset_index(drop=True), np.asarray(ds.y),
                 np.sort(perm[:n_train]), perm[n_train:])


def credit_split() -> tuple[Setup, Any, np.ndarray, Any, np.ndarray]:
    """The German-credit setup and its training and held-out records: (setup, Xtr, ytr, Xte, yte)."""
    s = german_credit()
    Xtr, ytr = s.rows(s.train_idx)
    Xte, yte = s.rows(s.held_idx)
    return s, Xtr, ytr, Xte, yte


def accuracy(model: Any, X: Any, y: np.ndarray) -> float:
    return float(np.mean(np.asarray(model.predict(X)) == y))


def fit_target(setup: Setup, kind: str, seed: int = SEED) -> Any:
    X, y = setup.rows(setup.train_idx)
    return factory(kind, setup.schema, seed)().fit(X, y)


class Timer:
    """Wall-clock and CPU seconds of this process (the CPU time does not grow with the load
    other processes put on the shared machine)."""

    def __enter__(self) -> Timer:
        self.t0 = time.perf_counter()
        self.c0 = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.t0
        self.cpu = time.process_time() - self.c0


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table."""
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)
