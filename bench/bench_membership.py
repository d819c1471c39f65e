"""Membership inference on German credit: our attacks beside the adversarial-robustness-toolbox's
black-box attack (and privacy-meter's reference attack when it is installed).

Standard threat model: the attacker's pool is all 1,000 records (500 members, 500 non-members;
it does not know which); every record is scored. Strict: the attacker's population is 250
held-out records, never overlapping the training data; scored: 250 members, 250 other held-out
records. Times: wall-clock and CPU seconds of the benchmark process (the machine is shared; CPU
seconds do not grow with other processes' load; LiRA and RMIA share their reference models, so
RMIA's time after LiRA's is the attack alone). ART's attack trains its attack model on half of the members and non-members (a stronger
knowledge than ours: it knows some membership) and is scored on the other half.

    python bench/run.py membership            # 64 reference models
    python bench/bench_membership.py --refs 16 --targets rf
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import TARGET_NAMES, Timer, factory, fit_target, german_credit, table  # noqa: E402

from finmlsec import metrics  # noqa: E402
from finmlsec.attacks import ATTACKS, AttackData, Labeled  # noqa: E402
from finmlsec.targets.oracle import Oracle  # noqa: E402

PUBLISHED = {"rf": "LiRA/RMIA 0.99 (TPR 0.80); ART 0.85-0.88; privacy-meter 0.91",
             "gb": "LiRA/RMIA 0.78; ART 0.62; privacy-meter 0.61",
             "lr": "LiRA/RMIA 0.60; ART 0.50; privacy-meter 0.53"}


def _row(target: str, setting: str, attack: str, m: dict[str, float], t: Timer) -> list[Any]:
    return [TARGET_NAMES[target], setting, attack, m["auc"], m["tpr_at_0.1%_fpr"],
            m["tpr_at_1%_fpr"], m["advantage"], t.seconds, t.cpu]


def ours(setup: Any, kind: str, model: Any, refs: int) -> list[list[Any]]:
    X, y = setup.X, setup.y
    members = Labeled(*setup.rows(setup.train_idx))
    held = setup.held_idx
    nonmembers = Labeled(*setup.rows(held))
    make = factory(kind, setup.schema, seed=1)  # the attacker knows the algorithm, not the seed
    standard = AttackData(schema=setup.schema, population=Labeled(X, y), model_factory=make,
                          members=members, nonmembers=nonmembers)
    rng = np.random.default_rng(0)
    strict = AttackData(
        schema=setup.schema, model_factory=make,
        population=Labeled(*setup.rows(held[:250])),
        members=Labeled(*setup.rows(np.sort(rng.choice(setup.train_idx, 250, replace=False)))),
        nonmembers=Labeled(*setup.rows(held[250:])))
    rows = []
    plan = [("standard", "membership.lira", {"n_reference": refs}, standard),
            ("standard", "membership.rmia", {"n_reference": refs, "n_population": 1000},
             standard),
            ("standard", "membership.metric", {}, standard),
            ("strict", "membership.lira", {"n_reference": refs}, strict),
            ("strict", "membership.rmia", {"n_reference": refs, "n_population": 250}, strict)]
    for setting, name, params, data in plan:
        with Timer() as t:
            r = ATTACKS.get(name)(**params).run(Oracle(model), data)
        label = name + (f" ({refs} refs)" if "n_reference" in params else "")
        rows.append(_row(kind, setting, label, r.metrics, t))
        print(f"  {kind} {setting} {label}: AUC {r.metrics['auc']:.3f} "
              f"TPR@1% {r.metrics['tpr_at_1%_fpr']:.3f} ({t.seconds:.1f} s, CPU {t.cpu:.1f} s)",
              flush=True)
    return rows


def art_blackbox(setup: Any, kind: str, model: Any, attack_model: str) -> list[Any] | None:
    try:
        from art.attacks.inference.membership_inference import MembershipInferenceBlackBox
        from art.estimators.classification.scikitlearn import SklearnClassifier
    except ImportError:
        return None
    prep, est = model[0], model[-1]
    enc = prep.transform(setup.X)
    enc = enc.toarray() if hasattr(enc, "toarray") else np.asarray(enc, dtype=float)
    classifier = SklearnClassifier(model=est)
    rng = np.random.default_rng(0)
    mem, non = rng.permutation(setup.train_idx), rng.permutation(setup.held_idx)
    half = len(mem) // 2
    with Timer() as t, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # ART's attack model (e.g. RandomForestClassifier()) has no seed of its own: it draws
        # from numpy's global generator, seeded here so its figures are reproducible
        np.random.seed(0)
        attack = MembershipInferenceBlackBox(classifier, attack_model_type=attack_model)
        attack.fit(enc[mem[:half]], setup.y[mem[:half]], enc[non[:half]], setup.y[non[:half]])
        xs = np.concatenate([enc[mem[half:]], enc[non[half:]]])
        ys = np.concatenate([setup.y[mem[half:]], setup.y[non[half:]]])
        score = np.asarray(attack.infer(xs, ys, probabilities=True)).reshape(len(xs), -1)[:, -1]
    truth = np.r_[np.ones(len(mem) - half), np.zeros(len(non) - half)]
    m = {"auc": metrics.auc(truth, score), "tpr_at_0.1%_fpr": metrics.tpr_at_fpr(truth, score, 0.001),
         "tpr_at_1%_fpr": metrics.tpr_at_fpr(truth, score, 0.01),
         "advantage": metrics.advantage(truth, score)}
    print(f"  {kind} ART black-box ({attack_model}): AUC {m['auc']:.3f} ({t.seconds:.1f} s, "
          f"CPU {t.cpu:.1f} s)", flush=True)
    return _row(kind, "ART's (knows half the membership)", f"ART MembershipInferenceBlackBox "
                f"({attack_model})", m, t)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench_membership")
    ap.add_argument("--refs", type=int, default=64)
    ap.add_argument("--targets", default="rf,gb,lr")
    ap.add_argument("--art-model", default="rf", choices=["nn", "rf", "gb"])
    args = ap.parse_args(argv)
    setup = german_credit()
    rows: list[list[Any]] = []
    with threadpool_limits(limits=1):
        for kind in args.targets.split(","):
            model = fit_target(setup, kind)
            rows += ours(setup, kind, model, args.refs)
            art = art_blackbox(setup, kind, model, args.art_model)
            if art is not None:
                rows.append(art)
    print()
    print(table(["target", "threat model", "attack", "AUC", "TPR@0.1%FPR", "TPR@1%FPR",
                 "advantage", "wall s", "CPU s"], rows))
    print("\nPublished, as reproduced on this machine: "
          + "; ".join(f"{TARGET_NAMES[k]}: {v}" for k, v in PUBLISHED.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
