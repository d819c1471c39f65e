"""Utility measured the way the business uses the model: a declared metric (ROC AUC for a
two-class model that scores), every figure shown, and the decision taken on the declared one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from finmlsec.errors import SpecError


@pytest.fixture(scope="module")
def credit() -> dict[str, Any]:
    """The German Credit logistic regression as deployed, and under label-only output."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from finmlsec.datasets import load
    from finmlsec.datasets.splits import split_three
    from finmlsec.defences import DEFENCES
    from finmlsec.scan.work import utility
    from finmlsec.schema import preprocessor

    ds = load("german_credit")
    train, _, test = split_three(ds, 0)
    model = make_pipeline(preprocessor(ds.schema, categories="data"),
                          LogisticRegression(max_iter=2000)).fit(train.X, train.y)
    label_only = DEFENCES.get("confidence.label_only")(model, prefit=True).fit(train.X, train.y)
    return {"model": model, "label_only": label_only, "test": test,
            "before": utility(model, test), "after": utility(label_only, test)}


def test_label_only_keeps_accuracy_but_loses_roc_auc(credit: dict[str, Any]) -> None:
    from sklearn.metrics import roc_auc_score

    before, after = credit["before"], credit["after"]
    for u in (before, after):
        assert set(u) == {"accuracy", "balanced_accuracy", "roc_auc", "average_precision", "f1",
                          "precision", "recall", "classes_decided"}
        assert u["classes_decided"] == 2.0
    test = credit["test"]
    direct = roc_auc_score(np.asarray(test.y) == 1, credit["model"].predict_proba(test.X)[:, 1])
    assert before["roc_auc"] == pytest.approx(direct)
    # the decisions are the same: every decision figure is unchanged
    for k in ("accuracy", "balanced_accuracy", "f1", "precision", "recall"):
        assert after[k] == pytest.approx(before[k])
    # the ranking of applicants is gone: two score levels left
    assert before["roc_auc"] - after["roc_auc"] > 0.1
    assert after["roc_auc"] == pytest.approx(after["balanced_accuracy"])


def _plan(defence: str) -> dict[str, Any]:
    def unit(defences: list[str]) -> dict[str, Any]:
        return {"id": "infer_model@model_io/extraction.equation" + "".join(
            "+" + d for d in defences), "threat": "infer_model", "via": "model_io",
            "attack": "extraction.equation", "params": {}, "defences": defences,
            "countermeasures": ["modify_confidence"] * len(defences)}
    return {"units": [unit([]), unit([defence])], "threats": [{
        "attack": "infer_model", "via": "model_io", "priority": "primary",
        "countermeasures": ["modify_confidence"], "decision": "mitigate", "reason": "",
        "attacked": True, "notes": []}]}


def test_label_only_is_not_recommended_for_a_scoring_model(credit: dict[str, Any]) -> None:
    from finmlsec.scan.decide import summarize

    plan = _plan("confidence.label_only")
    ids = [u["id"] for u in plan["units"]]
    # the copy's fidelity drops from 0.9 to 0.2, measured on 500 test records
    outcomes = {ids[0]: {"status": "done", "utility": credit["before"], "n_test": 500,
                         "result": {"success": 0.9, "metrics": {}}},
                ids[1]: {"status": "done", "utility": credit["after"], "n_test": 500,
                         "result": {"success": 0.2, "metrics": {}}}}
    s = summarize(plan, outcomes, max_utility_drop=0.05)
    t = s["threats"][0]
    assert s["utility_metric"] == "roc_auc"
    cm = t["countermeasures"][0]
    assert cm["utility_drop"] == pytest.approx(credit["before"]["roc_auc"]
                                               - credit["after"]["roc_auc"])
    assert t["best"] is None and t["residual_risk"] == "high"
    assert "at most 0.05 roc_auc" in t["recommendation"]
    # a bank that only uses the decision declares accuracy: then it costs nothing
    t = summarize(plan, outcomes, max_utility_drop=0.05, utility_metric="accuracy")["threats"][0]
    assert t["best"] == ["confidence.label_only"]
    assert "accuracy cost +0.000" in t["recommendation"]


def test_the_default_metric_follows_the_deployed_model(tmp_path: Path) -> None:
    from finmlsec.scan.decide import decision_metric
    from finmlsec.scan.runner import default_metric
    from finmlsec.scenario import load_scenario
    from finmlsec.spec import load_spec
    from scan_support import build_credit_system

    spec = build_credit_system(tmp_path)
    assert default_metric(load_spec(spec), load_scenario(spec)) == "roc_auc"
    spec.write_text(spec.read_text().replace("harm_of_wrong_output: high}",
                                             "harm_of_wrong_output: high, utility_metric: f1}"))
    assert default_metric(load_spec(spec), load_scenario(spec)) == "f1"
    # a declared metric the model has no figure for (three classes): accuracy
    assert decision_metric("roc_auc", {"accuracy": 0.7, "balanced_accuracy": 0.6}) == "accuracy"


def test_an_unknown_metric_is_one_spec_error_naming_the_known_ones(tmp_path: Path) -> None:
    from finmlsec.spec import parse_spec

    text = ("organisations: [{id: bank}]\nroles: {training_data_provider: bank, system_user: "
            "bank, model_generator: bank, model_operator: bank}\nstakes: {utility_metric: auc}\n")
    with pytest.raises(SpecError) as err:
        parse_spec(text)
    msg = str(err.value)
    assert len(msg.splitlines()) == 1 and "stakes.utility_metric" in msg
    for name in ("accuracy", "roc_auc", "balanced_accuracy", "f1", "average_precision"):
        assert name in msg


def test_reports_show_every_figure_and_name_the_metric(tmp_path: Path) -> None:
    from finmlsec.report.scan import render_html, render_markdown
    from scan_support import scan_credit_system

    doc, _ = scan_credit_system(tmp_path, ("membership.metric",))
    s = doc["summary"]
    assert s["utility_metric"] == "roc_auc" and doc["run"]["options"]["utility_metric"] == "roc_auc"
    t = next(t for t in doc["threats"] if t["countermeasures"])
    assert set(t["countermeasures"][0]["utility"]) >= {"accuracy", "roc_auc", "f1"}
    md, html = render_markdown(doc), render_html(doc)
    assert "drop of **roc auc**" in md and "roc auc cost" in md
    assert "balanced accuracy" in md and "average precision" in md
    assert "Cost (roc auc)" in html and "average precision" in html
    # the method appendix states the rule a recommendation must pass
    for text in (md, html):
        assert "Appendix: method" in text and "beyond noise" in text and "1.96" in text
