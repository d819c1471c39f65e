"""Poisoning on German credit: accuracy drop from flipped labels, and the flow-G feedback loop.

Targets as in bench/_common.py (500 training records; logistic regression, gradient boosting,
random forest of 200 trees); the 500 held-out records are split into a population the honest
users report errors from (250) and a test set (250) on which accuracy is measured.

Table 1: accuracy drop (clean minus poisoned accuracy on the test set) for label flipping of 5%
and 10% of the training rows, random (mean of 3 seeds) and loss-maximising; optimised linear
poisoning (10% added points); the backdoor's attack success rate at 5% added points.
Table 2: the feedback loop of flow G, undefended: for each of the first K held-out applicants the
target rejects, the attacker submits 2 crafted reports a round next to 20 honest error reports,
the provider merges everything and retrains every round; the attacker's reports are capped at
5% of the training data; once undefended, once with the defences' ``feedback_screen`` (fitted on
the trusted training data). No public toolkit simulates this loop, so there is no peer column.

Usage: python bench/bench_poisoning.py [--targets lr,gb,rf] [--profiles K]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Timer, factory, german_credit, table  # noqa: E402

from finmlsec.attacks import ATTACKS, AttackData, Labeled  # noqa: E402
from finmlsec.defences.feedback_screen import FeedbackScreen  # noqa: E402
from finmlsec.targets.oracle import Oracle  # noqa: E402

NAMES = {"lr": "logistic regression", "gb": "gradient boosting", "rf": "random forest (200 trees)"}


def loop_row(target: str, screen: str, results: list[dict[str, float]],
             seconds: float) -> list[Any]:
    flipped = [m for m in results if m["flipped"]]

    def med(key: str) -> float:
        return float(np.median([m[key] for m in flipped])) if flipped else float("nan")

    top = max((m["poison_share_train"] for m in flipped), default=float("nan"))
    share = f"{med('poison_share_train'):.2%} (max {top:.2%})" if flipped else "-"
    return [
        target, screen, f"{len(flipped)}/{len(results)}", med("rounds_to_flip") if flipped else "-",
        med("poisoned_accepted") if flipped else "-", share,
        f"{med('poison_share_feedback'):.0%}" if flipped else "-",
        int(sum(m["poisoned_submitted"] - m["poisoned_accepted"] for m in results)),
        int(sum(m["benign_submitted"] - m["benign_accepted"] for m in results)),
        f"{np.median([m['accuracy_drop'] for m in results]):+.3f}",
        f"{np.median([m['collateral_changed'] for m in results]):.1%}",
        f"{seconds / max(1, len(results)):.1f}",
    ]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench_poisoning")
    ap.add_argument("--targets", default="lr,gb,rf")
    ap.add_argument("--profiles", type=int, default=5, help="target profiles per model")
    args = ap.parse_args(argv)
    setup = german_credit()
    Xtr, ytr = setup.rows(setup.train_idx)
    held = np.random.default_rng(1).permutation(setup.held_idx)
    Xp, yp = setup.rows(np.sort(held[:250]))
    Xte, yte = setup.rows(np.sort(held[250:]))
    avail: list[list[Any]] = []
    loop: list[list[Any]] = []
    flip = ATTACKS.get("poisoning.label_flip")
    for kind in args.targets.split(","):
        make = factory(kind, setup.schema)
        base = AttackData(schema=setup.schema, train=Labeled(Xtr, ytr), test=Labeled(Xte, yte),
                          population=Labeled(Xp, yp), model_factory=make)
        with Timer() as t:
            row: list[Any] = [NAMES[kind]]
            clean = None
            for frac in (0.05, 0.10):
                drops = []
                for seed in (0, 1, 2):
                    r = flip(fraction=frac, seed=seed).run(None, base)
                    drops.append(r.metrics["accuracy_drop"])
                    clean = r.metrics["clean_accuracy"]
                row.append(f"{np.mean(drops):+.3f} ± {np.std(drops):.3f}")
            row.insert(1, clean)
            for frac in (0.05, 0.10):
                r = flip(fraction=frac, strategy="adversarial").run(None, base)
                row.append(f"{r.metrics['accuracy_drop']:+.3f}")
            r = ATTACKS.get("poisoning.optimal_linear")(fraction=0.10).run(None, base)
            row.append(f"{r.metrics['accuracy_drop']:+.3f} (flipped copies {r.metrics['init_accuracy_drop']:+.3f})")
            r = ATTACKS.get("poisoning.backdoor")(fraction=0.05).run(None, base)
            row.append(f"{r.metrics['attack_success_rate']:.0%} (clean drop {r.metrics['accuracy_drop']:+.3f})")
        row.append(f"{t.seconds:.0f}")
        avail.append(row)
        print(f"{kind}: availability done", file=sys.stderr, flush=True)

        deployed = make().fit(Xtr, ytr)
        rejected = Xte[deployed.predict(Xte) == 0].reset_index(drop=True).iloc[: args.profiles]
        trusted = FeedbackScreen().fit(Xtr, ytr)  # fitted once; the loop resets it per run
        for screen in (None, trusted):
            results = []
            with Timer() as t:
                for i in range(len(rejected)):
                    data = AttackData(schema=setup.schema, train=Labeled(Xtr, ytr),
                                      population=Labeled(Xp, yp), test=Labeled(Xte, yte),
                                      model_factory=make, victims=Labeled(rejected.iloc[i:i + 1]))
                    att = ATTACKS.get("poisoning.feedback_loop")(
                        target_class=1, reports_per_round=2, benign_per_round=20, max_rounds=20,
                        max_poison_share=0.05, screen=screen)
                    results.append(att.run(Oracle(deployed, access="label"), data).metrics)
            loop.append(loop_row(NAMES[kind], "feedback_screen" if screen else "none", results,
                                 t.seconds))
        print(f"{kind}: feedback loop done", file=sys.stderr, flush=True)
    print("Availability and backdoor (accuracy drop on 250 test records; clean accuracy first)\n")
    print(table(["target", "clean accuracy", "random flip 5%", "random flip 10%",
                 "loss-maximising flip 5%", "loss-maximising flip 10%",
                 "optimised linear 10%", "backdoor 5%: success", "seconds"], avail))
    print("\nFeedback loop (flow G); attacker capped at 5% of the training data; medians over "
          "the flipped profiles\n")
    print(table(["target", "screen", "profiles flipped", "median rounds",
                 "median poisoned reports merged", "poisoned share of training data",
                 "poisoned share of merged feedback", "poisoned reports rejected",
                 "honest reports rejected", "accuracy drop vs honest loop",
                 "other decisions changed", "seconds / profile"], loop))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
