"""Each countermeasure against the attacks it counters: attack success and utility, before/after.

German credit (bench/_common.py: 500 training records, 500 held out, seed 0) and the OCR digits
(ocr_digits: 1,797 8x8 images). The attacks are the project's registered attacks
(finmlsec.attacks.ATTACKS), run through an Oracle exactly as a scan runs them; the defences are
finmlsec.defences. Every row states the issue's target and whether it was met; a countermeasure
that does not help is reported as such.

Usage: python bench/bench_defences.py [--only NAME[,NAME]]   (names: output, membership, pate,
generalise, poison, feedback, adversarial; "adversarial" includes distillation and the input screen)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Timer, factory, table  # noqa: E402
from _common import accuracy as acc  # noqa: E402
from _common import credit_split as credit  # noqa: E402

from finmlsec.attacks.base import ATTACKS, AttackData, Labeled  # noqa: E402
from finmlsec.targets.oracle import Oracle  # noqa: E402

Row = list[Any]
HEAD = ["countermeasure", "attack", "model / data", "attack before", "attack after",
        "utility before", "utility after", "seconds", "target", "met"]


# -- output defences against extraction ----------------------------------------------------------
def bench_output() -> list[Row]:
    from _def_data import output

    return output()


# -- confidence rounding against membership inference ---------------------------------------------
def bench_membership() -> list[Row]:
    from finmlsec.defences.confidence import LabelOnly, RoundConfidence

    s, Xtr, ytr, Xte, yte = credit()
    make = factory("rf", s.schema)
    rf = make().fit(Xtr, ytr)
    pop = Labeled(Xte.iloc[:250], yte[:250])
    data = AttackData(schema=s.schema, members=Labeled(Xtr.iloc[:250], ytr[:250]),
                      nonmembers=Labeled(Xte.iloc[250:], yte[250:]), population=pop,
                      model_factory=make)
    rows: list[Row] = []
    for name, kw in (("membership.metric", {}), ("membership.lira", {"n_reference": 16})):
        with Timer() as t:
            before = ATTACKS.get(name)(**kw).run(Oracle(rf), data)
            rnd = RoundConfidence(rf, decimals=1, prefit=True).fit(Xtr, ytr)
            after = ATTACKS.get(name)(**kw).run(Oracle(rnd), data)
        rows.append(["round confidences (1 decimal)", name, "credit RF (200 trees, overfit)",
                     before.metrics["auc"], after.metrics["auc"], acc(rf, Xte, yte),
                     acc(rnd, Xte, yte), t.seconds, "report (toolbox: 0.85 -> 0.88)",
                     _verdict(before.metrics["auc"], after.metrics["auc"])])
    with Timer() as t:
        lab = ATTACKS.get("membership.label_only")(seed=0).run(
            Oracle(LabelOnly(rf, prefit=True).fit(Xtr, ytr), access="label"), data)
    rows.append(["label only", "membership.label_only (before: LiRA on full outputs)",
                 "credit RF", before.metrics["auc"], lab.metrics["auc"], acc(rf, Xte, yte),
                 acc(rf, Xte, yte), t.seconds, "report",
                 _verdict(before.metrics["auc"], lab.metrics["auc"])])
    return rows


def _verdict(before: float, after: float) -> str:
    if after <= 0.55:
        return "helps (near chance)"
    if before - after >= 0.1:
        return f"helps partly (AUC still {after:.2f})"
    return f"does not help (AUC {before:.2f} -> {after:.2f})"


# -- PATE -----------------------------------------------------------------------------------------
def bench_pate() -> list[Row]:
    from _def_pate import bench_pate as run  # the PATE rows live in bench/_def_pate.py

    return run()


# -- generalisation against attribute inference ---------------------------------------------------
def bench_generalise() -> list[Row]:
    from _def_data import generalise

    return generalise()


# -- poisoning ------------------------------------------------------------------------------------
def bench_poison() -> list[Row]:
    from _def_data import poison

    return poison()


def bench_feedback() -> list[Row]:
    from finmlsec.defences.feedback_screen import FeedbackScreen

    s, Xtr, ytr, Xte, yte = credit()
    rows: list[Row] = []
    for kind in ("lr", "gb"):
        make = factory(kind, s.schema)
        model = make().fit(Xtr, ytr)
        victims = np.flatnonzero(model.predict(Xte) == 0)[:5]
        out = []
        with Timer() as t:
            for honest in (0, 20):
                for screen in (None, "fit"):
                    flips = acc_ok = poison_in = benign_in = benign_all = 0
                    for v in victims:
                        data = AttackData(train=Labeled(Xtr, ytr), model_factory=make,
                                          schema=s.schema, victims=Labeled(Xte.iloc[[v]]),
                                          population=Labeled(Xte.iloc[250:], yte[250:]),
                                          test=Labeled(Xte.iloc[:250], yte[:250]))
                        sc = FeedbackScreen(model=make()).fit(Xtr, ytr) if screen else None
                        r = ATTACKS.get("poisoning.feedback_loop")(
                            target_class=1, reports_per_round=4, max_rounds=6,
                            benign_per_round=honest, screen=sc).run(Oracle(model), data)
                        flips += r.metrics["flipped"]
                        poison_in += r.metrics["poisoned_accepted"]
                        benign_in += r.metrics["benign_accepted"]
                        benign_all += r.metrics["benign_submitted"]
                        acc_ok += r.metrics.get("accuracy_after", 0.0)
                    out.append((honest, screen, flips / len(victims), poison_in,
                                benign_in / max(benign_all, 1), acc_ok / len(victims)))
        for honest in (0, 20):
            (_, _, f0, p0, _, a0), (_, _, f1, p1, b1, a1) = [o for o in out if o[0] == honest]
            rows.append(["feedback screen", f"poisoning.feedback_loop ({honest} honest "
                         "reports/round)", f"credit {kind.upper()} ({len(victims)} victims)",
                         f"flipped {f0:.0%} ({p0:.0f} poison merged)",
                         f"flipped {f1:.0%} ({p1:.0f} poison merged)", a0, a1, t.seconds / 2,
                         "stops the loop",
                         ("yes" if f1 == 0 else ("poison stopped; flips from honest retraining"
                                                 if p1 == 0 else "no"))
                         + (f"; {b1:.0%} honest accepted" if honest else "")])
    return rows


# -- evasion: adversarial training, distillation, input screening ---------------------------------
def bench_adversarial() -> list[Row]:
    from _def_adversarial import credit_rows

    return credit_rows() + bench_digits_evasion()


def _digits_net(epochs: int = 30) -> Any:
    from finmlsec.targets.torch_estimator import TorchClassifier

    return TorchClassifier(kwargs={"in_features": 64, "n_classes": 10, "hidden": [128]},
                           epochs=epochs, lr=3e-3, random_state=0, input_kind="image")


def bench_digits_evasion() -> list[Row]:
    from _def_adversarial import digits_rows

    rows, (plain, X, y, tr, te, eps) = digits_rows(_digits_net)
    return rows + bench_input(plain, X, y, tr, te, eps)


def bench_input(plain: Any, X: np.ndarray, y: np.ndarray, tr: np.ndarray, te: np.ndarray,
                eps: float) -> list[Row]:
    from finmlsec.defences.input_screen import InputScreen

    with Timer() as t:
        guarded = InputScreen(_digits_net(), random_state=0, squeeze_levels=2,
                              squeeze_fpr=0.05).fit(X[tr], y[tr])
    model = guarded.estimator_
    ok = np.flatnonzero(model.predict(X[te]) == y[te])[:200]
    out = ATTACKS.get("evasion.pgd")(eps=eps, iterations=30, seed=0).generate(
        Oracle(model, access="white_box", input_kind="image"), X[te][ok], y[te][ok])
    adv = out.X_adv[np.asarray(out.success)]
    det_adv = float(np.mean(~guarded.decide(adv).accept)) if len(adv) else float("nan")
    det_clean = float(np.mean(~guarded.decide(X[te]).accept))
    return [["input screen (feature squeezing to 1 bit + OOD)", f"evasion.pgd (eps {eps})",
             "OCR digits MLP", float(np.mean(out.success)),
             float(np.mean(out.success)) * (1 - det_adv), acc(model, X[te], y[te]),
             f"{1 - det_clean:.3f} of clean inputs accepted", t.seconds,
             "report: detection rate", f"flags {det_adv:.0%} of adversarial, "
             f"{det_clean:.0%} of clean inputs"]]


SECTIONS = {"output": bench_output, "membership": bench_membership, "pate": bench_pate,
            "generalise": bench_generalise, "poison": bench_poison, "feedback": bench_feedback,
            "adversarial": bench_adversarial}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench_defences")
    ap.add_argument("--only", default=",".join(SECTIONS))
    args = ap.parse_args(argv)
    names = args.only.split(",")
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        ap.error(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    rows: list[Row] = []
    for name in names:
        with Timer() as t:
            rows += SECTIONS[name]()
        print(f"[{name}: {t.seconds:.0f} s]", file=sys.stderr, flush=True)
    print(table(HEAD, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
