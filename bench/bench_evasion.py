"""Constrained evasion (ours) beside ART's HopSkipJump on German credit.

Same targets (gradient boosting; random forest of 200 trees; bench/_common.py), same applicants:
held-out applicants the target rejects, to be turned to approved. HopSkipJump (Chen et al. 2020,
adversarial-robustness-toolbox) works on the model's encoded input (one-hot categories, scaled
numbers) as decision-based attacks do; its outputs are then checked against the schema: a valid
record has exactly one category per one-hot block, whole numbers in range and unchanged
immutable/non-actionable fields. "HSJ projected" decodes HopSkipJump's output to the nearest
valid record (most weighted category, rounded and clipped numbers, protected fields restored) and
asks the target again.

Usage: python bench/bench_evasion.py [--n N_APPLICANTS] [--hsj-iter ITER]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Timer, fit_target, german_credit, table  # noqa: E402

from finmlsec.attacks.evasion import ConstrainedEvasion  # noqa: E402
from finmlsec.attacks.evasion_common import changes_and_cost, feature_scales  # noqa: E402
from finmlsec.schema import FeatureSchema, FeatureType  # noqa: E402
from finmlsec.targets.oracle import Oracle  # noqa: E402


def dense(M: Any) -> np.ndarray:
    return np.asarray(M.toarray() if hasattr(M, "toarray") else M, dtype=np.float64)


def blocks(schema: FeatureSchema) -> list[tuple[str, int, int]]:
    """(feature, first column, width) of each feature in the preprocessor's output order."""
    cats = [f for f in schema.features if f.type == FeatureType.CATEGORICAL]
    nums = [f for f in schema.features if f.type != FeatureType.CATEGORICAL]
    out, k = [], 0
    for f in cats:
        w = len(f.categories or ())
        out.append((f.name, k, w))
        k += w
    for f in nums:
        out.append((f.name, k, 1))
        k += 1
    return out


def decode(schema: FeatureSchema, prep: Any, E: np.ndarray, X0: pd.DataFrame) -> pd.DataFrame:
    """Nearest valid records for encoded vectors; protected fields restored from ``X0``."""
    scaler = prep.named_transformers_["num"][-1]  # the scaler after the imputer
    nums = [f for f in schema.features if f.type != FeatureType.CATEGORICAL]
    out = X0.copy().reset_index(drop=True)
    b = {name: (k, w) for name, k, w in blocks(schema)}
    raw_num = scaler.inverse_transform(E[:, [b[f.name][0] for f in nums]])
    for f in schema.features:
        if not f.mutable:
            continue
        k, w = b[f.name]
        if f.type == FeatureType.CATEGORICAL:
            out[f.name] = np.array(f.categories, dtype=object)[np.argmax(E[:, k:k + w], axis=1)]
        else:
            j = [g.name for g in nums].index(f.name)
            v = np.clip(np.round(raw_num[:, j]), f.min, f.max)
            out[f.name] = v.astype(X0[f.name].dtype)
    return out


def encoded_valid(schema: FeatureSchema, prep: Any, E: np.ndarray, E0: np.ndarray) -> np.ndarray:
    """Whether encoded vectors are encodings of valid, reachable records."""
    scaler = prep.named_transformers_["num"][-1]  # the scaler after the imputer
    nums = [f for f in schema.features if f.type != FeatureType.CATEGORICAL]
    b = {name: (k, w) for name, k, w in blocks(schema)}
    raw = scaler.inverse_transform(E[:, [b[f.name][0] for f in nums]])
    ok = np.ones(len(E), dtype=bool)
    for f in schema.features:
        k, w = b[f.name]
        block = E[:, k:k + w]
        if not f.mutable:
            ok &= np.isclose(block, E0[:, k:k + w], atol=1e-6).all(axis=1)
        if f.type == FeatureType.CATEGORICAL:
            ok &= (np.isclose(block, 0, atol=1e-6) | np.isclose(block, 1, atol=1e-6)).all(axis=1)
            ok &= np.isclose(block.sum(axis=1), 1, atol=1e-6)
        else:
            v = raw[:, [g.name for g in nums].index(f.name)]
            ok &= np.isclose(v, np.round(v), atol=1e-6) & (v >= f.min - 1e-6) & (v <= f.max + 1e-6)
    return ok


def run_hsj(model: Any, schema: FeatureSchema, X0: pd.DataFrame, E_train: np.ndarray,
            max_iter: int) -> dict[str, Any]:
    from art.attacks.evasion import HopSkipJump
    from art.estimators.classification import BlackBoxClassifier

    prep, est = model.named_steps["prep"], model.named_steps["model"]
    counter = {"n": 0}

    def predict(x: np.ndarray) -> np.ndarray:
        counter["n"] += len(x)
        return est.predict_proba(x)

    clf = BlackBoxClassifier(predict, input_shape=(E_train.shape[1],), nb_classes=2,
                             clip_values=(E_train.min(axis=0), E_train.max(axis=0)))
    attack = HopSkipJump(clf, targeted=False, max_iter=max_iter, verbose=False)
    E0 = dense(prep.transform(X0))
    t0 = time.perf_counter()
    E_adv = attack.generate(E0)
    seconds = time.perf_counter() - t0
    success = est.predict(E_adv) == 1
    valid = encoded_valid(schema, prep, E_adv, E0)
    changed_cols = (~np.isclose(E_adv, E0, atol=1e-6)).sum(axis=1)
    changed_feats = np.array([sum(not np.allclose(E_adv[i, k:k + w], E0[i, k:k + w], atol=1e-6)
                                  for _, k, w in blocks(schema)) for i in range(len(E0))])
    projected = decode(schema, prep, E_adv, X0)
    proj_success = model.predict(projected) == 1
    proj_valid = schema.is_valid(projected)
    return {"success": success, "valid": valid, "changed_cols": changed_cols,
            "changed": changed_feats, "seconds": seconds, "queries": counter["n"],
            "proj_success": proj_success & proj_valid, "projected": projected}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench_evasion")
    ap.add_argument("--n", type=int, default=20, help="rejected applicants per target")
    ap.add_argument("--hsj-iter", type=int, default=10,
                    help="HopSkipJump max_iter (ART default 50; 10 bounds the run time)")
    ap.add_argument("--targets", default="gb,rf")
    args = ap.parse_args(argv)
    setup = german_credit()
    Xh, _ = setup.rows(setup.held_idx)
    Xtr, ytr = setup.rows(setup.train_idx)
    rows: list[list[Any]] = []
    names = {"gb": "gradient boosting", "rf": "random forest (200 trees)"}
    for kind in args.targets.split(","):
        model = fit_target(setup, kind)
        rejected = Xh[model.predict(Xh) == 0].reset_index(drop=True).iloc[: args.n]
        n = len(rejected)
        schema = setup.schema
        scale = feature_scales(schema, Xtr)
        oracle = Oracle(model, access="label")
        att = ConstrainedEvasion(target_class=1)
        with Timer() as t:
            out = att.generate(oracle, rejected, schema=schema, population=Xtr)
        won = out.success & out.valid
        changed, cost = changes_and_cost(schema, rejected, out.X_adv, scale)
        prep = model.named_steps["prep"]
        E0 = dense(prep.transform(rejected))
        Ea = dense(prep.transform(out.X_adv))
        cols = (~np.isclose(Ea, E0, atol=1e-6)).sum(axis=1)
        rows.append([names[kind], "finmlsec evasion.constrained (label-only)", n,
                     f"{out.success.mean():.0%}", f"{out.valid.mean():.0%}", f"{won.mean():.0%}",
                     float(np.median(changed[won])) if won.any() else float("nan"),
                     float(np.median(cols[won])) if won.any() else float("nan"),
                     t.seconds / n, oracle.queries_used / n])
        E_train = dense(prep.transform(Xtr))
        h = run_hsj(model, schema, rejected, E_train, args.hsj_iter)
        hw = h["success"] & h["valid"]
        rows.append([names[kind], f"ART HopSkipJump (max_iter={args.hsj_iter})", n,
                     f"{h['success'].mean():.0%}", f"{h['valid'].mean():.0%}", f"{hw.mean():.0%}",
                     float(np.median(h["changed"][h["success"]])),
                     float(np.median(h["changed_cols"][h["success"]])),
                     h["seconds"] / n, h["queries"] / n])
        pc, _ = changes_and_cost(schema, rejected, h["projected"], scale)
        ps = h["proj_success"]
        rows.append([names[kind], "ART HopSkipJump, projected to valid records", n,
                     f"{ps.mean():.0%}", "100%", f"{ps.mean():.0%}",
                     float(np.median(pc[ps])) if ps.any() else float("nan"), "", "", ""])
        print(f"{kind}: done ({n} applicants)", file=sys.stderr, flush=True)
    headers = ["target", "attack", "applicants", "success", "valid", "success and valid",
               "median features changed", "median encoded columns changed",
               "seconds / applicant", "queries / applicant"]
    print(table(headers, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
