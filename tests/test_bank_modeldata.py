"""A bank's export in R's ``write.csv`` format, shaped like ``modeldata::lending_club`` (an
unnamed quoted row id, coded strings, ``3e+05``, 35 sub-grades, 50 states, 95/5 good/bad), with
the bank's random forest of 200 trees (tests/bank_files.py, :func:`build_modeldata`). At its 0.5
threshold the forest decides ``good`` for every applicant, as a forest on such data does: the
scan's verdicts must not read that as safety."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bank_files import build_modeldata, r_number, run_cli
from bank_files import scan_quick as _scan


@pytest.fixture(scope="module")
def modeldata(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_modeldata(tmp_path_factory.mktemp("modeldata"))


def test_the_file_has_r_s_format_and_the_forest_decides_good_for_everyone(
        modeldata: dict[str, Path]) -> None:
    assert r_number(3e5) == "3e+05" and r_number(120000) == "120000"
    text = modeldata["data"].read_text("utf-8")
    assert text.startswith('"","funded_amnt","term"') and '\n"1",' in text
    assert "e+05" in text
    import skops.io as sio

    model = sio.load(modeldata["model"], trusted=sio.get_untrusted_types(file=modeldata["model"]))
    test = pd.read_csv(modeldata["test"])
    assert set(model.predict(test.drop(columns=["Class"]))) == {"good"}
    assert 0.03 < float(np.mean(test["Class"] == "bad")) < 0.07


class _AcceptAll:
    def decide(self, X: Any) -> Any:
        return SimpleNamespace(accept=np.ones(len(X), dtype=bool))


def test_evasion_behind_a_screen_attacks_only_applicants_decided_against(
        modeldata: dict[str, Path]) -> None:
    """Behind an input screen, the scan ran the attack on every record, counting those already
    decided for the applicant as won (and a move in either direction as a success): 0.15 on a
    forest that refuses no one, where undefended it had no victim."""
    import skops.io as sio

    from finmlsec.attacks.base import AttackData, Labeled
    from finmlsec.attacks.evasion import ConstrainedEvasion
    from finmlsec.datasets.splits import _schema_from_yaml
    from finmlsec.scan.work import through_screen
    from finmlsec.targets.base import as_target
    from finmlsec.targets.oracle import Oracle

    model = sio.load(modeldata["model"], trusted=sio.get_untrusted_types(file=modeldata["model"]))
    schema = _schema_from_yaml(modeldata["schema"])
    test = pd.read_csv(modeldata["test"]).head(20)
    pop = pd.read_csv(modeldata["population"])
    data = AttackData(schema=schema,
                      victims=Labeled(test.drop(columns=["Class"]), test["Class"].to_numpy()),
                      population=Labeled(pop.drop(columns=["Class"]), pop["Class"].to_numpy()))
    oracle = Oracle(as_target(model), "label")
    result = through_screen(ConstrainedEvasion(), oracle, data, _AcceptAll())
    assert result.metrics["n_victims"] == 0 and result.metrics["n_already_at_goal"] == 20
    assert result.success == 0.0
    assert any("favourable outcome good" in n for n in result.notes)


@pytest.mark.slow
def test_evasion_with_no_one_to_turn_is_not_measured_not_risk_none(
        modeldata: dict[str, Path], tmp_path: Path) -> None:
    """A model that approves everyone gave evasion a success of 0 out of 0 victims, reported as
    risk none (a pass the scan could not support); behind the input screen 0.15, as if the
    screen made things worse."""
    code, output, units = _scan(modeldata["spec"], tmp_path / "e.db", "evasion.constrained",
                                defences=("input_screen",))
    assert code == 0, output
    assert units and all(u.status == "done" for u in units), output
    flat = " ".join(output.split())
    assert "risk none" not in flat.split("Induce false classification")[1].split("\n")[0]
    line = next(ln for ln in output.splitlines() if "Induce false classification" in ln)
    assert line.startswith("NOT MEASURED"), output
    assert "not measurable: the deployed model already gives the outcome" in flat
    behind = next(u for u in units if u.unit_id.endswith("+input_screen"))
    assert behind.outcome["result"]["metrics"]["n_victims"] == 0
    assert behind.outcome["result"]["success"] == 0.0


@pytest.mark.slow
def test_the_committee_summary_says_what_a_copy_agrees_on_not_its_lift_as_agreement(
        modeldata: dict[str, Path], tmp_path: Path) -> None:
    """The copy of a model that decides alike for everyone agrees on all test cases, as a
    constant copy does; the summary said it 'agrees with it on 0% of test cases' (the lift)."""
    from finmlsec.store import Store

    code, output, units = _scan(modeldata["spec"], tmp_path / "x.db", "extraction.equation")
    assert code == 0, output
    run = Store.open(str(tmp_path / "x.db")).runs()[0].id
    out = tmp_path / "r.md"
    code, text = run_cli(["report", run, "--format", "md", "-o", str(out),
                          "--db", str(tmp_path / "x.db")])
    assert code == 0, text
    md = out.read_text("utf-8")
    assert "agrees with it on 0% of test cases" not in md
    assert "agrees with it on 100% of test cases, against 100% for a copy made without" in md
    assert "What was tested.** None" not in md


def test_the_dp_countermeasure_trains_through_a_pipeline_that_one_hot_encodes_sparsely(
        modeldata: dict[str, Path]) -> None:
    """The bank's Pipeline one-hot encodes 35 sub-grades and 50 states into a sparse matrix;
    dp.logistic_regression stopped every unit with 'Sparse data was passed for X, but dense
    data is required'."""
    from bank_files import forest_pipeline
    from finmlsec.defences.dp import DPLogisticRegression

    train = pd.read_csv(modeldata["train"])
    test = pd.read_csv(modeldata["test"])
    model = DPLogisticRegression(forest_pipeline(n_estimators=5), random_state=0).fit(
        train.drop(columns=["Class"]), train["Class"])
    proba = model.predict_proba(test.drop(columns=["Class"]))
    assert proba.shape == (len(test), 2) and np.allclose(proba.sum(axis=1), 1.0)
    assert model.privacy_.epsilon <= 3.0 + 1e-9


def _weighted_forest() -> Any:
    from sklearn.model_selection import FixedThresholdClassifier

    from bank_files import forest_pipeline

    pipe = forest_pipeline(n_estimators=20)
    pipe.set_params(clf__class_weight={"bad": 19.0, "good": 1.0})
    return FixedThresholdClassifier(pipe, threshold=0.1, pos_label="bad",
                                    response_method="predict_proba")


def test_models_like_the_deployed_one_train_on_its_class_names(tmp_path: Path) -> None:
    """A bank's answer to 95/5: class weights and a cut-off that name the classes
    (class_weight={'bad': 19}, pos_label='bad'). The scan's reference, shadow and poisoned
    models were trained on label indices, and the feedback loop stopped with 'pos_label=bad is
    not a valid label: It should be one of [0 1]'; extraction.learning's weighted refits with
    'Passing extra keyword arguments to FixedThresholdClassifier'."""
    from finmlsec.scenario import load_scenario

    paths = build_modeldata(tmp_path / "weighted", n=600, model=_weighted_forest())
    sc = load_scenario(paths["spec"])
    assert sc.model_factory is not None
    model = sc.model_factory().fit(sc.train.X, sc.train.y,
                                   sample_weight=np.ones(len(sc.train.y)))
    assert set(np.asarray(model.classes_).tolist()) == {0, 1}
    pred = np.asarray(model.predict(sc.test.X))
    assert set(pred.tolist()) <= {0, 1} and (pred == 0).any()  # the cut-off refuses some
    assert model.predict_proba(sc.test.X).shape == (len(pred), 2)
    # as the deployed model decides, in the scan's indices
    deployed = np.asarray(sc.target.predict(sc.test.X))
    assert np.mean((deployed == "bad") == (pred == 0)) > 0.7
    # a copy learning the model's own answers (extraction) answers in them: its agreement with
    # the model was 0 when it answered indices
    copy = sc.model_factory().fit(sc.train.X, np.asarray(sc.target.predict(sc.train.X)))
    assert set(np.asarray(copy.predict(sc.test.X)).tolist()) <= {"bad", "good"}
    assert np.mean(np.asarray(copy.predict(sc.test.X)) == deployed) > 0.3  # not 0


def test_an_onnx_export_reads_the_unnamed_row_id_column(modeldata: dict[str, Path],
                                                        tmp_path: Path) -> None:
    """pandas reads R's unnamed row id as 'Unnamed: 0'; skl2onnx names that input
    'Unnamed__0' (each character replaced), and the scan stopped with "missing column(s)
    ['Unnamed__0'] for the ONNX model's inputs"."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from bank_files import MODELDATA_CATEGORIES
    from finmlsec.targets.load import load_target
    from messy_loans import to_onnx_bytes

    train = pd.read_csv(modeldata["train"])
    X, y = train.drop(columns=["Class"]), train["Class"]
    assert "Unnamed: 0" in X.columns
    pre = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), MODELDATA_CATEGORIES),
                             ("num", StandardScaler(), ["int_rate", "annual_inc", "revol_util"])])
    model = Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=2000))]).fit(X, y)
    path = tmp_path / "lr.onnx"
    path.write_bytes(to_onnx_bytes(model, X))
    onnx = load_target({"format": "onnx", "path": str(path)})
    test = pd.read_csv(modeldata["test"]).drop(columns=["Class"])
    assert np.allclose(onnx.predict_proba(test), model.predict_proba(test), atol=1e-4)


def test_an_exact_copy_of_the_scores_is_theft_though_the_decisions_are_nearly_constant(
        modeldata: dict[str, Path]) -> None:
    """On 95/5 data a logistic regression refuses almost no one at 0.5: a constant copy agrees
    on nearly every decision, so equation solving's exact copy of the bank's scores (error
    1e-9) had a decision lift 'within noise' and a success of 0, risk none."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from bank_files import MODELDATA_CATEGORIES
    from finmlsec.attacks.base import AttackData, Labeled
    from finmlsec.attacks.extraction_equation import EquationSolving
    from finmlsec.datasets.splits import _schema_from_yaml
    from finmlsec.targets.base import as_target
    from finmlsec.targets.oracle import Oracle

    schema = _schema_from_yaml(modeldata["schema"])
    train = pd.read_csv(modeldata["train"])
    test = pd.read_csv(modeldata["test"])
    pop = pd.read_csv(modeldata["population"])
    pre = ColumnTransformer([("cat", OneHotEncoder(handle_unknown="ignore"), MODELDATA_CATEGORIES),
                             ("num", StandardScaler(), ["int_rate", "annual_inc", "revol_util",
                                                        "funded_amnt", "delinq_2yrs"])])
    model = Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=2000))]).fit(
        train.drop(columns=["Class"]), train["Class"])
    classes = list(model.classes_)
    data = AttackData(
        schema=schema,
        test=Labeled(test.drop(columns=["Class"]),
                     np.array([classes.index(c) for c in test["Class"]])),
        population=Labeled(pop.drop(columns=["Class"]),
                           np.array([classes.index(c) for c in pop["Class"]])))
    result = EquationSolving(n_uniform=0).run(Oracle(as_target(model)), data)
    m = result.metrics
    assert m["fidelity_baseline"] > 0.97 and m["max_proba_error"] < 1e-6
    assert m["score_lift"] > 0.99 and m["score_lift_p"] < 1e-6
    assert result.success > 0.99
    assert any("score fidelity lift" in n for n in result.notes)
