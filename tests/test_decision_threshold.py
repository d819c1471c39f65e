"""The bank's decision threshold (``model.decision_threshold``) on a 95/5 loan file.

The file is tests/bank_files.py's modeldata export (95/5 good/bad) with the bank's random forest
of 200 trees: at the forest's own 0.5 it decides ``good`` for every held-out applicant, so every
decision-based figure of a scan is measured on a constant. The spec's cut-off (0.10 on the score
of the schema's positive class, ``bad``) is applied by the loaded target, by the models "like the
deployed one" and by the gateway; a scan of the forest without it says so first, not in small
print."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from bank_files import build_modeldata, run_cli
from bank_files import scan_quick as _scan

CUT = 0.10


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    paths = build_modeldata(tmp_path_factory.mktemp("cutoff"))
    text = paths["spec"].read_text("utf-8")
    assert "factory: {path: untrained.skops}}" in text
    paths["spec_cut"] = paths["spec"].with_name("spec_cut.yaml")
    paths["spec_cut"].write_text(text.replace(
        "factory: {path: untrained.skops}}",
        f"factory: {{path: untrained.skops}}, decision_threshold: {CUT}}}"), encoding="utf-8")
    return paths


def test_the_target_and_the_models_like_it_decide_at_the_cut_off(
        files: dict[str, Path]) -> None:
    from finmlsec.scenario import load_scenario

    # schema infer asks for the cut-off where the unfavourable class is rare
    assert ("# bad is 5.0% of the labels: at its own 0.5 a model may decide good for everyone; "
            "give the cut-off the bank applies to P(bad) as model.decision_threshold"
            ) in files["schema"].read_text("utf-8")
    plain = load_scenario(files["spec"])
    assert plain.cutoff is None
    assert set(np.asarray(plain.target.predict(plain.test.X)).tolist()) == {"good"}

    sc = load_scenario(files["spec_cut"])
    classes = sc.target.classes_.tolist()
    assert classes == ["bad", "good"] and sc.schema.positive_class == "bad"
    P = sc.target.predict_proba(sc.test.X)
    assert np.allclose(P, plain.target.predict_proba(plain.test.X))  # scores unchanged
    pred = np.asarray(sc.target.predict(sc.test.X))
    assert (pred == np.where(P[:, 0] >= CUT, "bad", "good")).all()
    assert 0.02 < float(np.mean(pred == "bad")) < 0.5  # decisions now vary

    # a model "like the deployed one" (reference, shadow, poisoned) trained on the scan's label
    # indices decides at the same cut-off
    like = sc.model_factory().fit(sc.train.X, sc.train.y)
    Q = like.predict_proba(sc.test.X)
    lp = np.asarray(like.predict(sc.test.X))
    assert (lp == np.where(Q[:, 0] >= CUT, 0, 1)).all() and (lp == 0).any()
    assert (np.asarray(plain.model_factory().fit(sc.train.X, sc.train.y).predict(sc.test.X))
            == 1).all()  # without the cut-off it approves everyone too


def test_a_retrained_countermeasure_and_an_output_defence_keep_the_cut_off(
        files: dict[str, Path]) -> None:
    """PATE's student and a bagged vote stand for the deployed model: the bank decides on their
    scores at its cut-off; rounding the released scores to 0.1 does not move the decisions,
    taken on the unrounded score."""
    from finmlsec.scan.work import build_defended
    from finmlsec.scenario import load_scenario

    sc = load_scenario(files["spec_cut"])
    rounded = build_defended(sc, ("confidence.round",), seed=0)
    assert (np.asarray(rounded.predict(sc.test.X)) == np.asarray(sc.target.predict(sc.test.X))
            ).all()
    bagged = build_defended(sc, ("robust.bagging",), seed=0)
    Q = bagged.predict_proba(sc.test.X)
    got = np.asarray(bagged.predict(sc.test.X))
    assert (got == np.where(Q[:, 0] >= CUT, 0, 1)).all() and (got == 0).any()


def test_a_quick_scan_warns_first_without_the_cut_off_and_evasion_has_victims_with_it(
        files: dict[str, Path], tmp_path: Path) -> None:
    code, output, units = _scan(files["spec"], tmp_path / "plain.db", "evasion.constrained",
                                defences=("input_screen",))
    assert code == 0, output
    head = output.splitlines()
    warn = next(i for i, ln in enumerate(head) if ln.startswith("WARNING: "))
    first_verdict = next(i for i, ln in enumerate(head) if "Induce false classification" in ln)
    assert warn < first_verdict, output
    assert "decides 'good' for 100.0% of the 300 held-out records" in head[warn]
    assert "model.decision_threshold" in head[warn]
    deployed = next(u for u in units if not u.unit_id.endswith("+input_screen"))
    assert deployed.outcome["result"]["metrics"]["n_victims"] == 0

    from finmlsec.store import Store

    run = Store.open(str(tmp_path / "plain.db")).runs()[0].id
    texts = {}
    for fmt in ("md", "html", "json"):
        out = tmp_path / f"r.{fmt}"
        code, text = run_cli(["report", run, "--format", fmt, "-o", str(out),
                              "--db", str(tmp_path / "plain.db")])
        assert code == 0, text
        texts[fmt] = out.read_text("utf-8")
    doc = json.loads(texts["json"])
    assert doc["summary"]["decisions"]["constant"] is True
    assert doc["summary"]["decisions"]["share"] == 1.0
    assert doc["summary"]["decisions"]["threshold"] is None
    assert len(doc["summary"]["warnings"]) == 1
    md = texts["md"]
    assert md.index("> **WARNING.** The deployed model decides 'good' for 100.0%") < md.index(
        "## Summary for the risk committee")
    html = texts["html"]
    assert html.index('class="warning"') < html.index('<section id="overview">')

    code, output, units = _scan(files["spec_cut"], tmp_path / "cut.db", "evasion.constrained",
                                defences=("input_screen",))
    assert code == 0, output
    assert "WARNING" not in output
    deployed = next(u for u in units if not u.unit_id.endswith("+input_screen"))
    d = deployed.outcome["decisions"]
    assert d["threshold"] == CUT and not d["constant"] and d["classes_decided"] == 2
    m = deployed.outcome["result"]["metrics"]
    # the victims are applicants the bank refuses at its cut-off, and evasion turns them
    assert m["n_victims"] > 0 and m["n_already_at_goal"] == 0
    assert deployed.outcome["result"]["success"] > 0.5
    assert deployed.outcome["utility"]["classes_decided"] == 2.0


def test_extraction_agreement_is_measured_on_the_thresholded_decisions(
        files: dict[str, Path]) -> None:
    """The copy's agreement is with the decisions the bank takes: against a target deciding at
    0.10 the constant copy no longer agrees on every record."""
    from finmlsec.attacks.extraction_learning import LearningExtraction
    from finmlsec.scenario import load_scenario
    from finmlsec.targets.oracle import Oracle

    figures = {}
    for key in ("spec", "spec_cut"):
        sc = load_scenario(files[key])
        result = LearningExtraction(budget=200, seed=0).run(
            Oracle(sc.target, "proba", budget=200), sc.attack_data(standard=True))
        figures[key] = result.metrics
        refused = float(np.mean(np.asarray(sc.target.predict(sc.test.X)) == "bad"))
        assert result.metrics["baseline_constant"] == pytest.approx(1.0 - refused)
    assert figures["spec"]["baseline_constant"] == 1.0
    assert figures["spec_cut"]["baseline_constant"] < 0.98
    assert figures["spec_cut"]["fidelity_test"] != figures["spec"]["fidelity_test"]
    # the copy's hard labels (which surrogate, whether it is constant) are the decisions at the
    # cut-off behind the scores it was answered, not their most probable class ('good' nearly
    # always on 95/5 data)
    att = LearningExtraction(budget=100, seed=0)
    oracle = Oracle(sc.target, "proba", budget=100)
    att.run(oracle, sc.attack_data(standard=True))
    P = sc.target.predict_proba(sc.test.X)
    labels = att._labels(P, True, sc.target.classes_)
    assert (labels == np.asarray(sc.target.predict(sc.test.X))).all() and (labels == "bad").any()


def test_membership_reads_whether_the_model_is_right_from_its_decisions_at_the_cut_off(
        files: dict[str, Path]) -> None:
    """Whether the model is right on a record is read from the bank's decision, not from the
    most probable class: on the 95/5 file decided at 0.10 the two disagree on dozens of
    candidates. The shadow attack's correctness feature reads the decisions of the target and
    of each shadow model; label-only membership, calibrated, compares the reference models'
    decisions with the labels they learnt (it compared them with the class names, matched
    none, and its calibration subtracted nothing)."""
    from finmlsec.attacks.membership import decision_features
    from finmlsec.attacks.membership_common import candidates, label_columns
    from finmlsec.attacks.membership_label import LabelOnly
    from finmlsec.gateway.redteam import CutoffOracle
    from finmlsec.scenario import load_scenario
    from finmlsec.targets.oracle import Oracle

    sc = load_scenario(files["spec_cut"])
    data = sc.attack_data(standard=True)
    cands, _ = candidates(data, None, 0)
    oracle = Oracle(sc.target, "proba")
    cols = label_columns(oracle.classes_, cands.y)
    P = oracle.predict_proba(cands.X)
    right = (np.asarray(sc.target.predict(cands.X)) == sc.target.classes_[cols]).astype(float)
    assert (decision_features(P, cols, oracle)[:, -1] == right).all()
    assert ((np.argmax(P, axis=1) == cols) != right.astype(bool)).sum() >= 20
    shadow = sc.model_factory().fit(data.population.X, data.population.y)
    Q = shadow.predict_proba(cands.X)
    assert (decision_features(Q, cols, shadow)[:, -1]
            == (np.asarray(shadow.predict(cands.X)) == cols)).all()
    assert ((np.argmax(Q, axis=1) == cols) != (np.asarray(shadow.predict(cands.X)) == cols)
            ).any()

    auc = {}
    for calibrate in (False, True):
        r = LabelOnly(calibrate=calibrate, n_reference=4, seed=0).run(
            Oracle(sc.target, "label"), data)
        auc[calibrate] = r.metrics["auc"]
    assert auc[True] > auc[False] + 0.02  # measured: 0.618 -> 0.662 (it stayed 0.618)

    # the red team's oracle answering from the model reads its decisions at the cut-off too
    X = sc.test.X
    replay = CutoffOracle(sc.target, sc.target, len(X), access="label")
    assert (np.asarray(replay.predict(X)) == np.asarray(sc.target.predict(X))).all()


def test_the_gateway_labels_are_the_decisions_at_the_cut_off(tmp_path: Path) -> None:
    """The gateway answered argmax of the scores; with a cut-off its labels are the bank's
    decisions, taken on the unrounded scores whatever the policy releases."""
    from finmlsec.gateway.app import create_app
    from finmlsec.gateway.demo import credit_scoring_model
    from finmlsec.gateway.policy import Policy
    from finmlsec.gateway.settings import Settings
    from finmlsec.targets.cutoff import Cutoff, CutoffTarget

    model = credit_scoring_model(seed=0)
    classes = [str(c) for c in model.target.classes_]
    bad = classes.index("bad") if "bad" in classes else 0
    target = CutoffTarget(model.target, Cutoff(0.2, bad))
    X = model.heldout.iloc[:60]
    P = model.target.predict_proba(X)
    expected = np.asarray(target.predict(X)).astype(str).tolist()
    argmax = [classes[i] for i in np.argmax(P, axis=1)]
    assert expected != argmax  # the cut-off changes some decisions
    app = create_app(Settings(db_url=f"sqlite:///{tmp_path / 'gw.db'}",
                              policy=Policy.model_validate({"output": {"mode": "round",
                                                                       "decimals": 1}})),
                     target=target, schema=model.schema, reference=model.train)
    token = app.state.gateway.db.create_key(org="bank", role="system_user").token
    recs = json.loads(X.to_json(orient="records"))

    async def go() -> Any:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
                return await c.post("/v1/predict", json={"records": recs},
                                    headers={"Authorization": f"Bearer {token}"})

    r = asyncio.run(go())
    assert r.status_code == 200, r.text
    assert [str(v) for v in r.json()["labels"]] == expected


def _spec(tmp: Path, model: str, threshold: Any, data: str = "") -> Path:
    path = tmp / "spec.yaml"
    path.write_text(
        "organisations: [{id: bank}, {id: public}]\n"
        "roles: {training_data_provider: bank, system_user: public, model_generator: bank,\n"
        "        model_operator: bank}\n"
        f"model: {{format: skops, path: {model}, decision_threshold: {threshold}}}\n" + data,
        encoding="utf-8")
    return path


@pytest.mark.parametrize("value", ["1.5", "0", "1", "-0.1", "'high'", ".nan"])
def test_a_threshold_out_of_range_is_one_line_exit_2(tmp_path: Path, value: str) -> None:
    code, output = run_cli(["analyze", str(_spec(tmp_path, "m.skops", value))])
    assert code == 2, output
    lines = output.strip().splitlines()
    assert len(lines) == 1 and "model.decision_threshold (line 4)" in lines[0]
    assert "strictly between 0 and 1" in lines[0]


def test_a_threshold_on_a_three_class_model_is_one_line_exit_2(tmp_path: Path) -> None:
    import pandas as pd
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=90), "b": rng.normal(size=90)})
    y = np.repeat(["low", "mid", "high"], 30)
    sio.dump(LogisticRegression().fit(X, y), tmp_path / "m.skops")
    X.assign(grade=y).to_csv(tmp_path / "d.csv", index=False)
    spec = _spec(tmp_path, "m.skops", 0.3, "data: {path: d.csv, label: grade}\n")
    code, output = run_cli(["scan", str(spec), "--profile", "quick", "--db",
                            str(tmp_path / "s.db"), "--executor", "serial"])
    assert code == 2, output
    lines = [ln for ln in output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, output
    assert re.search(r"model\.decision_threshold: 0\.3 needs a two-class model, but the model "
                     r"has 3 classes", lines[0]), output


def test_a_rare_event_model_that_decides_rarely_is_not_called_constant() -> None:
    """Fraud at 0.3% of transactions: a model that flags about as many as there are frauds
    decides 'legit' for over 99% of them and its decisions still carry information; a model
    that flags none does not."""
    from types import SimpleNamespace

    from sklearn.dummy import DummyClassifier
    from sklearn.linear_model import LogisticRegression

    from finmlsec.scan.decide import constant_decisions_warning
    from finmlsec.scan.work import decision_spread

    rng = np.random.default_rng(0)
    n = 20_000
    X = rng.normal(size=(n, 3))
    y = np.where(X[:, 0] + 0.5 * X[:, 1] > 3.2, "fraud", "legit")
    assert 0.001 < np.mean(y == "fraud") < 0.006
    train, held = slice(0, n // 2), slice(n // 2, n)
    test = SimpleNamespace(X=X[held], y=y[held])
    model = LogisticRegression(C=100.0, max_iter=2000).fit(X[train], y[train])
    d = decision_spread(model, test)
    assert d["majority"] == "legit" and d["share"] >= 0.99  # decides alike for >= 99% ...
    assert d["constant"] is False and constant_decisions_warning(d) is None  # ... informatively
    flat = decision_spread(DummyClassifier().fit(X[train], y[train]), test)
    assert flat["constant"] is True and flat["label_share"] == pytest.approx(np.mean(
        y[held] == "legit"))
    warning = constant_decisions_warning(flat)
    assert warning is not None and "(whose labels are 'legit' for 99." in warning
