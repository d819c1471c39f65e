"""The privacy loss a scan reports per membership threat, and a declared privacy claim."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from finmlsec.errors import SpecError
from finmlsec.scan.privacy import privacy_loss
from finmlsec.spec import load_spec
from scan_support import build_credit_system

CLAIM = "  privacy_claim: {epsilon: 0.5, delta: 1.0e-5, mechanism: none really}\n"


def _overfit_system(root: Path) -> Path:
    """The small credit system with a 200-tree forest (it memorises its training records) and a
    privacy claim it cannot meet."""
    import skops.io as sio
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline

    from finmlsec.datasets import load
    from finmlsec.datasets.splits import split_three
    from finmlsec.schema import preprocessor

    spec = build_credit_system(root)
    ds = load("german_credit")
    train, _, _ = split_three(ds, 0)
    model = make_pipeline(preprocessor(ds.schema, categories="data"),
                          RandomForestClassifier(n_estimators=200, random_state=0, n_jobs=1))
    sio.dump(model.fit(train.X, train.y), root / "model.skops")
    text = spec.read_text("utf-8").replace("model: {format: skops, path: model.skops}\n",
                                           "model:\n  format: skops\n  path: model.skops\n"
                                           "  trusted_types: [sklearn.tree._tree.Tree]\n" + CLAIM)
    spec.write_text(text, "utf-8")
    return spec


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from finmlsec.report.scan import scan_document
    from finmlsec.scan import get_profile, make_executor, run_scan, start_scan
    from finmlsec.store import Store

    root = tmp_path_factory.mktemp("privacy")
    spec = _overfit_system(root / "system")
    store = Store.open(str(root / "finmlsec.db"))
    profile = get_profile("quick").model_copy(update={"only": ("membership.metric",)})
    rid = start_scan(spec, store=store, profile=profile, seed=0)
    run_scan(store, rid, executor=make_executor("serial"))
    return scan_document(store.run(rid), store.units(rid))


def test_the_overfit_forest_contradicts_its_claim(scanned: dict[str, Any]) -> None:
    from finmlsec.report.scan import render_html, render_markdown

    assert scanned["run"]["options"]["privacy_claim"] == {
        "epsilon": 0.5, "delta": 1e-5, "mechanism": "none really"}
    [t] = [t for t in scanned["threats"] if t["attack"] == "infer_training_data"
           and t["success"] is not None]
    p = t["privacy_loss"]
    m = next(a for a in t["attacks"] if a["name"] == p["attack"])["metrics"]
    assert p["epsilon_lower"] == pytest.approx(m["empirical_epsilon"])
    assert p["epsilon_lower"] > 0.5 and p["claim_contradicted"] is True
    assert p["epsilon_point"] >= p["epsilon_lower"] and p["confidence"] == 0.95
    assert "CONTRADICTED" in p["words"]
    assert "Privacy loss." in render_markdown(scanned)
    assert "CONTRADICTED" in render_html(scanned)
    others = [t for t in scanned["threats"] if t["attack"] != "infer_training_data"]
    assert all(t["privacy_loss"] is None and t["exposure"] is None for t in others)


def test_the_most_exposed_records_are_named_by_row_with_a_profile(scanned: dict[str, Any]
                                                                   ) -> None:
    from finmlsec.report.scan import render_markdown

    [t] = [t for t in scanned["threats"] if t["attack"] == "infer_training_data"
           and t["success"] is not None]
    e = t["exposure"]
    assert e["attack"] == t["privacy_loss"]["attack"]
    rows = [r["row"] for r in e["top"]]
    assert len(rows) == 20 == len(set(rows)) and all(0 <= r < e["members"] for r in rows)
    above = [r["above_nonmembers"] for r in e["top"]]
    assert above == sorted(above, reverse=True)
    # the tail is more exposed than the average member
    assert e["top1pct"]["flagged_at_1pct_fpr"] >= e["all_flagged_at_1pct_fpr"]
    p = e["profile"]
    assert p["n_exposed"] == 20 and 0 <= p["outlier_percentile"]["exposed"] <= 1
    assert 0 <= p["rare_category_share"]["exposed"] <= 1
    for c in e["countermeasures"]:
        assert 0 <= c["same_top"] <= 20 and c["top1pct"]["n"] >= 1
    md = render_markdown(scanned)
    assert "Who is exposed." in md and f"rows {rows[0]}, " in md
    # no record's content: the stored summary holds row numbers and aggregates only
    assert set(e["top"][0]) == {"row", "above_nonmembers"}


def test_exposure_finds_the_outliers_a_model_memorises() -> None:
    """Scores that single out the members far from the rest: the profile says they are
    outliers with a rare category, and the tail is flagged while the average member is not."""
    import numpy as np
    import pandas as pd

    from finmlsec.attacks.membership_exposure import exposure

    rng = np.random.default_rng(0)
    n = 400
    X = pd.DataFrame({"income": rng.normal(size=n), "job": rng.choice(["a", "b"], size=n)})
    truth = (np.arange(n) % 2 == 0).astype(int)
    odd = np.flatnonzero(truth == 1)[:8]
    X.loc[odd, "income"] = 12.0 + 4.0 * np.arange(len(odd))  # far apart: true outliers
    X.loc[odd, "job"] = "pilot"
    s = rng.normal(size=n)
    s[odd] = 10.0
    e = exposure(s, X, np.zeros(n, int), truth, np.arange(n))
    assert {r["row"] for r in e["top"][:8]} == set(odd.tolist())
    assert e["top1pct"]["n"] == 2 and e["top1pct"]["flagged_at_1pct_fpr"] == 1.0
    assert e["all_flagged_at_1pct_fpr"] < 0.1
    p = e["profile"]
    assert p["outlier_percentile"]["exposed"] > 0.6
    assert p["rare_category_share"]["exposed"] >= 0.4 > p["rare_category_share"]["all"]
    assert p["over_represented"][0]["field"] == "job"
    assert p["over_represented"][0]["value"] == "pilot"


METRICS = {"empirical_epsilon": math.log((1 - 1e-5 - 0.2) / 0.2), "empirical_epsilon_point": 1.6,
           "empirical_epsilon_delta": 1e-5, "empirical_epsilon_confidence": 0.95,
           "empirical_epsilon_fpr_upper": 0.2, "empirical_epsilon_fnr_upper": 0.2}


def test_a_claim_above_the_bound_is_consistent_but_not_proven() -> None:
    p = privacy_loss("membership.lira", METRICS, {"epsilon": 3.0, "delta": 1e-5})
    assert p is not None and p["claim_contradicted"] is False
    assert "consistent" in p["words"] and "cannot prove" in p["words"]
    # restated at a larger delta the bound falls
    q = privacy_loss("membership.lira", METRICS, {"epsilon": 3.0, "delta": 0.1})
    assert q is not None and q["epsilon_lower"] < p["epsilon_lower"] and q["delta"] == 0.1


def test_no_claim_and_no_bound() -> None:
    p = privacy_loss("membership.lira", dict(METRICS, empirical_epsilon=0.0))
    assert p is not None and p["claim_contradicted"] is None
    assert "did not demonstrate" in p["words"]
    assert privacy_loss("evasion.pgd", {"auc": 0.9}) is None


@pytest.mark.parametrize("claim", ["{epsilon: 0}", "{epsilon: -1}", "{epsilon: .inf}",
                                   "{epsilon: 1, delta: 1}", "{delta: 1.0e-5}",
                                   "{epsilon: 1, sigma: 2}"])
def test_bad_claims_are_refused(tmp_path: Path, claim: str) -> None:
    spec = build_credit_system(tmp_path)
    text = spec.read_text("utf-8").replace(
        "model: {format: skops, path: model.skops}",
        f"model: {{format: skops, path: model.skops, privacy_claim: {claim}}}")
    spec.write_text(text, "utf-8")
    with pytest.raises(SpecError, match="privacy_claim"):
        load_spec(spec)


def test_the_dossier_carries_the_privacy_loss_and_the_exposed_records(
        scanned: dict[str, Any]) -> None:
    from finmlsec.report.dossier import build_dossier, render_dossier_html
    from finmlsec.report.scan import render_html

    d = build_dossier(scanned)
    [t] = [t for t in d["scan"]["threats"] if t["attack"] == "infer_training_data"
           and t["success"] is not None]
    assert t["privacy_loss"]["claim_contradicted"] is True and len(t["exposure"]["top"]) == 20
    page = render_dossier_html(d, render_html(scanned))
    assert "Privacy loss." in page and "CONTRADICTED" in page and "Who is exposed." in page
