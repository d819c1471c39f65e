"""DP training against membership inference: DP logistic regression on German credit and DP-SGD
(Opacus) on OCR digits at epsilon 1, 3 and 8 (delta 1e-5), next to the non-private model and PATE.

Usage: python bench/bench_dp.py [--only credit|digits]

Per row: utility on held-out records (accuracy; ROC AUC for credit), the loss-threshold
membership attack (``membership.metric``: AUC, TPR at 1% FPR, and the empirical lower bound on
epsilon at delta 1e-5 with 95% confidence that its scores give), the epsilon the training spends
(RDP accountant of dp-accounting) and the training time.

* German credit: the 500 training records of bench/_common.py train every model; the other 500
  are split 250 / 250: PATE's public (unlabelled) records and the evaluation records. Members
  scored: the first 250 training records; non-members: the 250 evaluation records. Ten seeds of
  the DP noise (mean shown), for output and for objective perturbation. Target: DP LR within 2 points of ROC AUC of the non-private LR at
  epsilon 3.
* OCR digits (scikit-learn's 1,797 8x8 images, pixels in [0, 1]): 1,000 train, 400 PATE public, 397
  test; an MLP (64 hidden units, TorchClassifier). Members scored: the first 397 training records.
  One seed. Target: DP-SGD within 5 points of accuracy of the non-private MLP at epsilon 3.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
from _common import credit_split, factory
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from finmlsec.attacks.base import ATTACKS, AttackData, Labeled
from finmlsec.datasets import load
from finmlsec.defences.dp import DPSGD, DPLogisticRegression
from finmlsec.defences.pate import PATE
from finmlsec.schema import preprocessor
from finmlsec.targets.oracle import Oracle

EPSILONS = (1.0, 3.0, 8.0)
SEEDS = 10  # DP noise seeds per DP logistic-regression row


def _mia(model: Any, mem: Labeled, non: Labeled) -> dict[str, float]:
    m = ATTACKS.get("membership.metric")().run(Oracle(model), AttackData(
        members=mem, nonmembers=non)).metrics
    return {k: m[k] for k in ("auc", "tpr_at_1%_fpr", "empirical_epsilon",
                              "empirical_epsilon_point")}


def _row(name: str, fitted: list[tuple[Any, float]], c: dict[str, Any],
         eps: float | None) -> dict[str, Any]:
    accs, aucs, mias, secs = [], [], [], []
    for model, s in fitted:
        accs.append(float(np.mean(np.asarray(model.predict(c["Xe"])) == c["ye"])))
        if c["binary"]:
            aucs.append(float(roc_auc_score(c["ye"], model.predict_proba(c["Xe"])[:, 1])))
        mias.append(_mia(model, c["mem"], c["non"]))
        secs.append(s)
    r = {"name": name, "eps": eps, "acc": np.mean(accs), "acc_sd": np.std(accs),
         "roc_auc": np.mean(aucs) if aucs else None, "roc_auc_sd": np.std(aucs) if aucs else None,
         "seconds": float(np.mean(secs)), "seeds": len(fitted)}
    for k in mias[0]:
        r[k] = float(np.mean([m[k] for m in mias]))
    r["empirical_epsilon_max"] = float(max(m["empirical_epsilon"] for m in mias))
    return r


def _timed(make: Any) -> tuple[Any, float]:
    t = time.perf_counter()
    m = make()
    return m, time.perf_counter() - t


def credit() -> list[dict[str, Any]]:
    s, Xtr, ytr, Xte, yte = credit_split()
    make = factory("lr", s.schema)
    c = dict(Xe=Xte.iloc[250:], ye=yte[250:], binary=True,
             mem=Labeled(Xtr.iloc[:250], ytr[:250]), non=Labeled(Xte.iloc[250:], yte[250:]))
    rows = [_row("non-private LR", [_timed(lambda: make().fit(Xtr, ytr))], c, None)]
    rf = factory("rf", s.schema)
    rows.append(_row("non-private 200-tree random forest (overfit)",
                     [_timed(lambda: rf().fit(Xtr, ytr))], c, None))

    def balanced() -> Pipeline:
        return Pipeline([("prep", preprocessor(s.schema)),
                         ("model", LogisticRegression(max_iter=2000, class_weight="balanced"))])

    pate = [_timed(lambda: PATE(balanced(), student=make(), random_state=0, n_teachers=25,
                                noise=10.0, max_queries=10).fit(Xtr, ytr, X_public=Xte.iloc[:250]))]
    rows.append(_row("PATE (25 teachers, GNMax sigma 10, 10 answers)", pate, c,
                     pate[0][0].privacy_.epsilon))
    for method, what in (("output", "output perturbation, Gaussian"),
                         ("objective", "objective perturbation, pure DP")):
        for eps in EPSILONS:
            fitted = [_timed(lambda seed=seed, eps=eps, method=method: DPLogisticRegression(
                make(), epsilon=eps, method=method, random_state=seed).fit(Xtr, ytr))
                for seed in range(SEEDS)]
            rows.append(_row(f"dp.logistic_regression ({what}; l2 0.03, clip 1)", fitted, c,
                             fitted[0][0].privacy_.epsilon))
    return rows


def digits() -> list[dict[str, Any]]:
    from finmlsec.targets.torch_estimator import TorchClassifier

    d = load("ocr_digits", source="digits")
    X = np.asarray(d.X, dtype=np.float32).reshape(len(d.y), -1)  # pixels in [0, 1]
    y = np.asarray(d.y)
    perm = np.random.default_rng(0).permutation(len(y))
    pr, pu, te = perm[:1000], perm[1000:1400], perm[1400:]
    c = dict(Xe=X[te], ye=y[te], binary=False, mem=Labeled(X[pr[:len(te)]], y[pr[:len(te)]]),
             non=Labeled(X[te], y[te]))
    net = TorchClassifier(architecture="mlp", kwargs={"in_features": 64, "n_classes": 10},
                          epochs=20, batch_size=64, lr=3e-3, input_kind="tabular")
    rows = [_row("non-private MLP", [_timed(lambda: net.fit(X[pr], y[pr]))], c, None)]
    pate = [_timed(lambda: PATE(LogisticRegression(max_iter=300), random_state=0,
                                n_teachers=100, noise=12.0, max_queries=15,
                                teacher_spreading=True).fit(X[pr], y[pr], X_public=X[pu]))]
    rows.append(_row("PATE (100 spreading teachers, GNMax sigma 12, 15 answers; LR student)",
                     pate, c, pate[0][0].privacy_.epsilon))
    for eps in EPSILONS:
        dp = [_timed(lambda eps=eps: DPSGD(net, epsilon=eps, batch_size=256, epochs=60, lr=1e-2,
                                   max_grad_norm=1.0).fit(X[pr], y[pr]))]
        rows.append(_row("dp.sgd (batch 256, 60 epochs, Adam 1e-2, clip 1)", dp, c,
                         dp[0][0].privacy_.epsilon))
    return rows


def _print(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{title}\n")
    print("| model | epsilon spent | accuracy | ROC AUC | MIA AUC | MIA TPR@1%FPR | "
          "empirical eps lower bound (max over seeds) | point est. | seconds | seeds |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        auc = "-" if r["roc_auc"] is None else f"{r['roc_auc']:.3f} ± {r['roc_auc_sd']:.3f}"
        eps = "none (not private)" if r["eps"] is None else f"{r['eps']:.2f}"
        print(f"| {r['name']} | {eps} | {r['acc']:.3f} ± {r['acc_sd']:.3f} | {auc} | "
              f"{r['auc']:.3f} | {r['tpr_at_1%_fpr']:.3f} | {r['empirical_epsilon']:.2f} "
              f"({r['empirical_epsilon_max']:.2f}) | {r['empirical_epsilon_point']:.2f} | "
              f"{r['seconds']:.1f} | {r['seeds']} |")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=("credit", "digits"))
    a = ap.parse_args()
    if a.only in (None, "credit"):
        _print("German credit (DP logistic regression)", credit())
    if a.only in (None, "digits"):
        _print("OCR digits (DP-SGD)", digits())
