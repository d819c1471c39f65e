"""PATE on a gradient-boosting pipeline: a ``modeldata::credit_data``-shaped file (the tests'
``credit_data_frame``: 4,454 rows, 72/28 good/bad) with the bank's imputer + one-hot +
GradientBoostingClassifier, split 50/25/25 as the scan's spec is; PATE fitted as the scan does
(the model wrapped as trained on class names, PATE's defaults with stratified queries, as the
scan's ``make_defence`` gives for tabular records, unless given).

Usage: python bench/bench_pate_credit.py ['{"n_teachers": 10, "noise": 4, "seed": 1}']

Prints the teachers' mean accuracy and ROC AUC on the test split, the plurality's accuracy, the
vote share's ROC AUC, the consensus (mean top share) and median vote margin, the answers, the
epsilon (data-independent; data-dependent in brackets, not itself private), and the student's
accuracy and ROC AUC. Results: docs/benchmarks.md (PATE, "Credit, gradient boosting").
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from bank_files import boosting_pipeline, credit_data_frame  # noqa: E402
from finmlsec.defences.pate import PATE  # noqa: E402
from finmlsec.targets.typed import AsTrained  # noqa: E402


def main() -> None:
    kw = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    seed = int(kw.pop("seed", 0))
    kw.setdefault("query_selection", "stratified")
    f = credit_data_frame(seed=seed)
    tr, rest = train_test_split(f, test_size=0.5, stratify=f.Status, random_state=seed)
    te = train_test_split(rest, test_size=0.5, stratify=rest.Status, random_state=seed)[0]
    X, y = tr.drop(columns="Status"), (tr.Status == "good").to_numpy().astype(int)
    Xt, yt = te.drop(columns="Status"), (te.Status == "good").to_numpy().astype(int)
    t = time.time()
    p = PATE(AsTrained(None, boosting_pipeline(), labels=["bad", "good"]), random_state=seed,
             **kw).fit(X, y)
    took = time.time() - t
    accs = [np.mean(np.asarray(m.predict(Xt)) == yt) for m in p.teachers_]
    aucs = [roc_auc_score(yt, np.asarray(m.predict_proba(Xt))[:, 1]) for m in p.teachers_
            if hasattr(m, "predict_proba") and len(m.classes_) == 2]
    v = p.votes(Xt)
    n = v.sum(axis=1)[0]
    r = p.privacy_
    s = p.predict_proba(Xt)[:, 1]
    print(f"{kw or 'defaults'} seed {seed}: {p.n_teachers_} teachers, teacher acc "
          f"{np.mean(accs):.3f} ROC AUC {np.mean(aucs) if aucs else float('nan'):.3f}; "
          f"plurality acc {np.mean(v.argmax(1) == yt):.3f}, vote share ROC AUC "
          f"{roc_auc_score(yt, v[:, 1] / n):.3f}, consensus {np.mean(v.max(1) / n):.3f}, "
          f"median margin {np.median(np.abs(v[:, 1] - v[:, 0])):.0f}")
    print(f"  answered {r.n_answered}/{r.n_queries}, equal to plurality {r.label_agreement:.3f}, "
          f"student records {r.n_student_records}, epsilon {r.epsilon:.2f} "
          f"(data-dep. {r.epsilon_data_dependent:.2f}), delta {r.delta:g}")
    print(f"  student acc {p.score(Xt, yt):.3f} ROC AUC {roc_auc_score(yt, s):.3f} "
          f"({len(np.unique(np.round(s, 6)))} distinct scores), {took:.1f} s")


if __name__ == "__main__":
    main()
