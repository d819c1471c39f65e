"""Evasion countermeasures of bench_defences.py: adversarial training and defensive distillation.

German credit (bench/_common.py split) and OCR digits (1,300 training / 497 test images, seeded
permutation). Attack success is measured on records the model decides against the attacker
(rejected applicants; correctly read digits), with the project's registered attacks through an
Oracle, plus (digits) a logit-margin PGD (Carlini-Wagner's loss), which a saturated softmax
does not mask. The reported "after" is the worst case over the attacks run on each input where
several are run.

Credit budget (why it differs from "any 2 fields"): an adversarial example is a change that
should *not* change the decision. Moving the requested amount or duration anywhere in their
range is a different application, whose risk really differs, so "any 2 actionable fields" (the
earlier row, kept for reference) is not a perturbation the model should resist. The budget here
is what an applicant can misreport on the form at once (<= 4 fields; with <= 2 the undefended
success is below 95%): the stated purpose (any),
telephone and other instalment plans, housing (any), one step of checking account, savings and
property in the schema's order, and the amount and duration within 10%. Immutable and
non-actionable fields (age, sex, employment, job, ...) stay as they are (schema). The attacker
gets scores (the greedy search); each record is attacked within its own narrowed schema
(finmlsec.defences.adversarial.budget_schema).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from _common import Timer, accuracy, credit_split, factory

from finmlsec.attacks.base import ATTACKS
from finmlsec.attacks.evasion import ConstrainedEvasion
from finmlsec.datasets import load
from finmlsec.defences import apply
from finmlsec.defences.adversarial import AdversarialTraining, budget_schema
from finmlsec.defences.distill import DefensiveDistillation
from finmlsec.targets.oracle import Oracle

Row = list[Any]
TARGET = ">= 0.95 -> <= 0.30 at <= 2 pts accuracy"
#: what an applicant can misreport on the form (see the module docstring)
MISREPORT = {"purpose": 9, "telephone": 1, "other_installment_plans": 2, "housing": 2,
             "checking_account": 1, "savings": 1, "property": 1,
             "credit_amount": 0.1, "duration_months": 0.1}
MISREPORT_FIELDS = 4  # fields misreported at once: at 2 the undefended success is 90% / 92.5%
EPS = 0.2  # digits in [0, 1]: the undefended success at eps 0.15 is below 95%, at 0.2 above


def _met(before: float, after: float, a0: float, a1: float) -> str:
    ok = before >= 0.95 and after <= 0.30 and a0 - a1 <= 0.02
    return f"{'yes' if ok else 'no'} (accuracy {100 * (a1 - a0):+.1f} pts)"


# -- credit ---------------------------------------------------------------------------------------
def credit_rows() -> list[Row]:
    s, Xtr, ytr, Xte, yte = credit_split()
    rows: list[Row] = []

    def rejected(model: Any) -> np.ndarray:
        return np.flatnonzero(np.asarray(model.predict(Xte)) == 0)[:40]

    def evade_free(model: Any) -> float:
        rej = rejected(model)
        out = ConstrainedEvasion(target_class=1, max_changes=2).generate(
            Oracle(model, access="label"), Xte.iloc[rej], None, s.schema)
        return float(np.mean(out.success & out.valid))

    def evade_budget(model: Any) -> float:
        won = []
        for i in rejected(model):
            rec = Xte.iloc[[i]]
            out = ConstrainedEvasion(target_class=1, max_changes=MISREPORT_FIELDS).generate(
                Oracle(model, access="proba"), rec, None,
                budget_schema(s.schema, rec.iloc[0], MISREPORT), population=Xtr)
            won.append(bool(out.success[0] and out.valid[0]))
        return float(np.mean(won))

    for kind in ("gb", "tree"):
        make = factory(kind, s.schema)
        m0 = make().fit(Xtr, ytr)
        a0 = accuracy(m0, Xte, yte)
        with Timer() as t:
            # both classes: every decision should survive a misreport, which also keeps the
            # class balance (augmenting rejected records only cost 7-14 points of accuracy)
            at = AdversarialTraining(schema=s.schema, budget=MISREPORT, rounds=3,
                                     n_per_round=150,
                                     attack_params={"max_changes": MISREPORT_FIELDS},
                                     random_state=0)
            m1 = apply(at, make(), Xtr, ytr)
            e0, e1 = evade_budget(m0), evade_budget(m1)
        a1 = accuracy(m1, Xte, yte)
        rows.append([f"adversarial training (3 rounds, both classes, {m1.n_augmented_} records)",
                     f"evasion.constrained (misreport budget, <= {MISREPORT_FIELDS} fields, scores)",
                     f"credit {kind.upper()}", e0, e1, a0, a1, t.seconds, TARGET,
                     _met(e0, e1, a0, a1)])
        with Timer() as t:  # the price of robustness at this budget: ignore the fields in it
            blind = _outside_budget(kind, s.schema).fit(Xtr, ytr)
            e2 = evade_budget(blind)
        a2 = accuracy(blind, Xte, yte)
        rows.append(["reference: same learner on the fields outside the budget only",
                     f"evasion.constrained (misreport budget, <= {MISREPORT_FIELDS} fields, scores)",
                     f"credit {kind.upper()}", e0, e2, a0, a2, t.seconds,
                     "robust by construction: the accuracy it costs", _met(e0, e2, a0, a2)])
        with Timer() as t:
            old = AdversarialTraining(schema=s.schema, rounds=3, n_per_round=100,
                                      attack_params={"target_class": 1, "max_changes": 2},
                                      random_state=0)
            m2 = apply(old, make(), Xtr, ytr)
            f0, f1 = evade_free(m0), evade_free(m2)
        a3 = accuracy(m2, Xte, yte)
        rows.append(["adversarial training (3 rounds, no budget)",
                     "evasion.constrained (any <= 2 actionable fields, labels)",
                     f"credit {kind.upper()}", f0, f1, a0, a3, t.seconds,
                     "not an adversarial budget (real changes of the application)",
                     _met(f0, f1, a0, a3)])
    return rows


def _outside_budget(kind: str, schema: Any) -> Any:
    from _common import estimator
    from sklearn.pipeline import Pipeline

    from finmlsec.schema import preprocessor

    sub = schema.model_copy(update={"features": tuple(
        f for f in schema.features if f.name not in MISREPORT)})
    return Pipeline([("prep", preprocessor(sub)), ("model", estimator(kind))])


# -- digits ---------------------------------------------------------------------------------------
def margin_pgd(model: Any, X: np.ndarray, y: np.ndarray, eps: float, steps: int = 40
               ) -> np.ndarray:
    """L-infinity PGD on the logit margin (Carlini-Wagner's f6 loss), through the model's own
    preprocessing (so CNNs work): unaffected by a saturated softmax. Adversarial inputs."""
    import torch

    logits = model.target_._logits
    x0 = torch.from_numpy(X.astype(np.float32))
    x = x0.clone()
    yt = torch.from_numpy(y.astype(np.int64))
    for _ in range(steps):
        x.requires_grad_(True)
        z = logits(x)
        true = z.gather(1, yt[:, None])[:, 0]
        other = z.masked_fill(torch.nn.functional.one_hot(yt, z.shape[1]).bool(), -1e9).max(1)[0]
        (grad,) = torch.autograd.grad((other - true).sum(), x)
        with torch.no_grad():
            x = x + (eps / 10) * grad.sign()
            x = torch.min(torch.max(x, x0 - eps), x0 + eps).clamp(0.0, 1.0)
    return x.detach().numpy()


def _cnn(epochs: int) -> Any:
    from finmlsec.targets.torch_estimator import TorchClassifier
    from finmlsec.usecases.ocr import CNN_KWARGS, CNN_TRAIN

    return TorchClassifier(architecture="small_cnn", kwargs=dict(CNN_KWARGS), input_shape=[1, 8, 8],
                           **{**CNN_TRAIN, "epochs": epochs}, random_state=0, input_kind="image")


def digits_rows(digits_net: Callable[..., Any]) -> tuple[list[Row], tuple[Any, ...]]:
    """Rows, and (plain MLP, X, y, train, test, eps) for the input-screen row."""
    d = load("ocr_digits")
    X, y = d.X.astype(np.float32), np.asarray(d.y)
    perm = np.random.default_rng(0).permutation(len(y))
    tr, te = perm[:1300], perm[1300:]

    def attacks(model: Any, eps: float) -> tuple[float, float, float]:
        """Success of cross-entropy PGD, of logit-margin PGD, and of the better per image, on
        200 correctly read test images."""
        ok = np.flatnonzero(model.predict(X[te]) == y[te])[:200]
        out = ATTACKS.get("evasion.pgd")(eps=eps, iterations=30, seed=0).generate(
            Oracle(model, access="white_box", input_kind="image"), X[te][ok], y[te][ok])
        pgd = np.asarray(out.success & out.valid)
        margin = model.predict(margin_pgd(model, X[te][ok], y[te][ok], eps)) != y[te][ok]
        return float(pgd.mean()), float(margin.mean()), float((pgd | margin).mean())

    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny networks: one thread is faster on the shared 2-core machine
    try:
        return _digits(digits_net, X, y, tr, te, attacks)
    finally:
        torch.set_num_threads(threads)


def _digits(digits_net: Callable[..., Any], X: np.ndarray, y: np.ndarray, tr: np.ndarray,
            te: np.ndarray, attacks: Callable[..., tuple[float, float, float]]
            ) -> tuple[list[Row], tuple[Any, ...]]:
    rows: list[Row] = []
    plain_mlp = None
    for name, make in (("MLP (64-128-10)", lambda e: digits_net(epochs=e)),
                       ("CNN (use case ocr)", _cnn)):
        plain = make(30).fit(X[tr], y[tr])
        if plain_mlp is None:
            plain_mlp = plain
        a0 = accuracy(plain, X[te], y[te])
        before, before_small = attacks(plain, EPS), attacks(plain, EPS / 2)
        with Timer() as t:
            at = AdversarialTraining(attack_params={"eps": EPS, "iterations": 10},
                                     loop_params={"steps": 7}, n_per_round=200, random_state=0)
            fitted = apply(at, make(40), X[tr], y[tr])
            hard = fitted.estimator_  # the trained network (white box, for the attacks)
            after, after_small = attacks(hard, EPS), attacks(hard, EPS / 2)
        a1 = accuracy(hard, X[te], y[te])
        what = f"adversarial training (PGD in the loop, {fitted.n_augmented_:,} examples)"
        rows.append([what, f"evasion.pgd (eps {EPS}, 30 steps)", f"OCR digits {name}",
                     before[0], after[0], a0, a1, t.seconds, TARGET, "see worst case"])
        rows.append([what, f"logit-margin PGD (C&W loss, eps {EPS})", f"OCR digits {name}",
                     before[1], after[1], a0, a1, 0.0, TARGET, "see worst case"])
        rows.append([what, f"worst of both per image, eps {EPS} (eps {EPS / 2})",
                     f"OCR digits {name}", f"{before[2]:.3f} ({before_small[2]:.3f})",
                     f"{after[2]:.3f} ({after_small[2]:.3f})", a0, a1, 0.0, TARGET,
                     _met(before[2], after[2], a0, a1)])
    assert plain_mlp is not None
    p0, c0, _ = attacks(plain_mlp, EPS)
    a0 = accuracy(plain_mlp, X[te], y[te])
    with Timer() as t:
        dist = apply(DefensiveDistillation(temperature=50), digits_net(), X[tr],
                     y[tr]).estimator_
        pd_, cd, wd = attacks(dist, EPS)
    ad = accuracy(dist, X[te], y[te])
    rows.append(["defensive distillation (T=50)", f"evasion.pgd (eps {EPS}, cross-entropy)",
                 "OCR digits MLP (64-128-10)", p0, pd_, a0, ad, t.seconds, "report",
                 "masks the loss gradient" if pd_ < p0 - 0.1 else "does not help"])
    rows.append(["defensive distillation (T=50)", f"logit-margin PGD (Carlini-Wagner loss, eps "
                 f"{EPS})", "OCR digits MLP (64-128-10)", c0, cd, a0, ad, 0.0,
                 "report (C&W break distillation)",
                 f"falls to the logit attack ({cd:.2f} vs {pd_:.2f} with cross-entropy PGD; "
                 f"worst of both {wd:.2f})" if cd > pd_ + 0.1 else "holds"])
    return rows, (plain_mlp, X, y, tr, te, EPS)
