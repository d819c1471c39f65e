"""`finmlsec demo build`: each use case builds, meets its quality gate, loads back through every
format it claims (scenario from each written spec), and carries the paper's roles and type.

One test per use case (the build is the expensive part and runs once), so pytest-xdist never
builds the same use case twice.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from finmlsec.cli.choices import usecase_names
from finmlsec.cli.main import build_app
from finmlsec.scenario import load_scenario
from finmlsec.spec import load_spec
from finmlsec.threatmodel import analyze
from finmlsec.usecases import USECASES, chatbot, credit_scoring, fraud, market_anomaly, ocr
from finmlsec.usecases.base import roles_of

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SAFE_SUFFIXES = {".yaml", ".skops", ".onnx", ".pt", ".csv", ".jsonl", ".npz", ".md", ".json"}
PAPER_TYPE = {"credit-scoring": 3, "fraud": 7, "market-anomaly": 10, "chatbot": 4, "ocr": 7}


def _build(name: str, out: Path, *extra: str) -> dict:
    res = CliRunner().invoke(build_app(), ["demo", "build", name, "--out", str(out), "--json",
                                           *extra])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def _check_common(result: dict, out: Path) -> dict[str, object]:
    """Checks every build must pass; returns spec key -> loaded scenario."""
    files = sorted(p for p in out.iterdir())
    assert {p.suffix for p in files} <= SAFE_SUFFIXES, files
    for p in files:  # nothing pickled: no file starts with a pickle protocol header
        head = p.read_bytes()[:2]
        assert not (p.suffix != ".pt" and len(head) == 2 and head[0] == 0x80 and head[1] <= 5), p
    card = json.loads((out / "model_card.json").read_text())
    md = (out / "model_card.md").read_text()
    for m in result["models"]:
        assert m["passes"], f"{m['name']} misses its gate: {m['metrics']}"
        assert f"### {m['name']}" in md
    assert [m["name"] for m in card["models"]] == [m["name"] for m in result["models"]]
    spec = load_spec(out / "spec.yaml")
    assert analyze(spec).type == PAPER_TYPE[result["usecase"]]
    scenarios = {}
    for key, path in result["specs"].items():
        sc = load_scenario(path)
        assert sc.target is not None and len(sc.train) > len(sc.test) > 0
        data = sc.attack_data()
        assert len(data.population) == len(sc.train) + len(sc.population)
        scenarios[key] = sc
    return scenarios


def _metric_agrees(card_value: float, value: float) -> None:
    assert value == pytest.approx(card_value, abs=1e-3)


def test_credit_scoring(tmp_path: Path) -> None:
    from sklearn.metrics import roc_auc_score

    result = _build("credit-scoring", tmp_path)
    scs = _check_common(result, tmp_path)
    assert set(scs) == {"gbm", "gbm_onnx", "logreg", "logreg_onnx"}
    metrics = {m["name"]: m["metrics"] for m in result["models"]}
    for key, sc in scs.items():
        auc = roc_auc_score(sc.test.y, sc.target.predict_proba(sc.test.X)[:, 1])
        assert auc >= 0.75, (key, auc)
        _metric_agrees(metrics[key.split("_")[0]]["roc_auc"], auc)
    for name in ("gbm", "logreg"):
        ref, onnx = scs[name], scs[f"{name}_onnx"]
        np.testing.assert_allclose(onnx.target.predict_proba(ref.test.X),
                                   ref.target.predict_proba(ref.test.X), atol=1e-4)
        assert ref.model_factory is not None and onnx.model_factory is None
    spec = yaml.safe_load((tmp_path / "spec.yaml").read_text())
    assert spec["model"]["trusted_types"] == ["sklearn.tree._tree.Tree"]
    assert spec["data"]["splits"] == {"train": "train.csv", "test": "test.csv",
                                      "population": "population.csv"}


def test_credit_scoring_builds_on_another_seed_with_its_onnx_copies(tmp_path: Path) -> None:
    """Seed 1's split puts a non-whole median in an integer column's imputer, which skl2onnx
    cannot impute into int64: the export types those inputs float and stays exact."""
    result = _build("credit-scoring", tmp_path, "--seed", "1")
    assert set(result["specs"]) == {"gbm", "gbm_onnx", "logreg", "logreg_onnx"}
    for name in ("gbm", "logreg"):
        ref = load_scenario(result["specs"][name])
        onnx = load_scenario(result["specs"][f"{name}_onnx"])
        np.testing.assert_allclose(onnx.target.predict_proba(ref.test.X),
                                   ref.target.predict_proba(ref.test.X), atol=1e-4)


@pytest.mark.parametrize("name, module", [("fraud", fraud), ("market-anomaly", market_anomaly)])
def test_anomaly_detection(tmp_path: Path, name: str, module) -> None:
    from sklearn.metrics import average_precision_score

    result = _build(name, tmp_path)
    scs = _check_common(result, tmp_path)
    assert set(scs) == {"gbm", "isolation_forest"}
    metrics = {m["name"]: m["metrics"] for m in result["models"]}
    for key, sc in scs.items():
        m = metrics[key]
        base = float(sc.test.y.mean())
        assert m["base_rate"] == pytest.approx(base)
        ap = average_precision_score(sc.test.y, sc.target.predict_proba(sc.test.X)[:, 1])
        _metric_agrees(m["pr_auc"], ap)  # the loaded model ranks exactly as the card says
        assert ap > 5 * base, f"{key}: PR AUC {ap:.3f} vs base rate {base:.4f}"
    assert metrics["gbm"]["pr_auc"] > 0.5
    iso = scs["isolation_forest"].target
    assert "score" in iso.capabilities and iso.classes_.tolist() == [0, 1]
    md = (tmp_path / "model_card.md").read_text()
    assert "base_rate" in md and "pr_auc" in md and module.NO_ONNX in md


def test_chatbot(tmp_path: Path) -> None:
    result = _build("chatbot", tmp_path)
    scs = _check_common(result, tmp_path)
    assert set(scs) == {"tfidf_logreg", "tfidf_logreg_onnx"}
    ref, onnx = scs["tfidf_logreg"], scs["tfidf_logreg_onnx"]
    acc = float((ref.target.predict(ref.test.X) == ref.test.y).mean())
    assert acc >= 0.90
    _metric_agrees(result["models"][0]["metrics"]["accuracy"], acc)
    agree = (onnx.target.predict(ref.test.X) == ref.target.predict(ref.test.X)).mean()
    assert agree >= 0.98
    assert ref.target.input_kind == "text" and isinstance(ref.test.X[0], str)
    assert (tmp_path / "test.jsonl").exists()


def test_ocr(tmp_path: Path) -> None:
    result = _build("ocr", tmp_path)
    scs = _check_common(result, tmp_path)
    assert set(scs) == {"cnn", "cnn_onnx", "mlp", "mlp_onnx"}
    for key, sc in scs.items():
        acc = float((np.asarray(sc.target.predict(sc.test.X)) == sc.test.y).mean())
        assert acc >= 0.97, (key, acc)
    cnn, cnn_onnx = scs["cnn"], scs["cnn_onnx"]
    assert "gradient" in cnn.target.capabilities
    est = cnn.model_factory()  # countermeasures retrain the CNN as it was trained
    assert (type(est).__name__, est.architecture, est.epochs) == ("TorchClassifier", "small_cnn", 25)
    assert not hasattr(est, "classes_")
    X = cnn.test.X[:20]
    assert cnn.target.gradient(X, cnn.test.y[:20]).shape == X.shape
    np.testing.assert_allclose(cnn_onnx.target.predict_proba(X), cnn.target.predict_proba(X),
                               atol=1e-5)
    assert (tmp_path / "test.npz").exists()
    spec = yaml.safe_load((tmp_path / "spec.yaml").read_text())
    assert spec["model"]["format"] == "torch"
    assert spec["model"]["torch"]["architecture"] == "small_cnn"


@pytest.mark.parametrize(
    "module, example",
    [(credit_scoring, "credit_scoring.yaml"), (fraud, "fraud_bank_data.yaml"),
     (market_anomaly, "market_anomaly.yaml"), (chatbot, "chatbot.yaml"),
     (ocr, "office_mlaas.yaml")],
)
def test_examples_refer_to_the_use_cases_spec(module, example: str) -> None:
    """One copy of a use case's organisations, roles and stakes: the package spec. Its example
    names the use case and adds only what is its own (the data set)."""
    path = EXAMPLES / example
    if not path.exists():
        pytest.skip(f"{path} is not in this checkout (examples/ ships with the repository)")
    doc = yaml.safe_load(path.read_text())
    assert doc["usecase"] == module.NAME
    assert set(doc) == {"usecase", "data"}, "the example repeats the use case's keys"
    spec, shipped = load_spec(path), roles_of(module.NAME)
    assert [o.id for o in spec.organisations] == [o["id"] for o in shipped["organisations"]]
    assert spec.name == shipped["name"] and spec.description == shipped["description"]
    def orgs(v: object) -> tuple:
        return (v,) if isinstance(v, str) else tuple(v)  # type: ignore[arg-type]

    for role, given in shipped["roles"].items():
        assert orgs(getattr(spec.roles, role)) == orgs(given), role


def test_usecase_key_errors_and_overrides(tmp_path: Path) -> None:
    from finmlsec.errors import SpecError

    p = tmp_path / "s.yaml"
    p.write_text("usecase: mortgage\n")
    with pytest.raises(SpecError, match=r"usecase.*unknown use case 'mortgage'.*credit-scoring"):
        load_spec(p)
    p.write_text("usecase: [chatbot]\n")
    with pytest.raises(SpecError, match="a use-case name is a string"):
        load_spec(p)
    p.write_text("usecase: chatbot\nname: Our bot\nstakes: {training_data: personal}\n")
    spec = load_spec(p)
    assert spec.name == "Our bot" and spec.roles.model_generator == ("vendor",)
    assert spec.stakes.training_data == "personal"  # a key given replaces the use case's whole


def test_registry_and_cli_errors() -> None:
    assert USECASES.names() == ["chatbot", "credit-scoring", "fraud", "market-anomaly", "ocr"]
    assert usecase_names() == USECASES.names()  # one spec file per registered use case
    res = CliRunner().invoke(build_app(), ["demo", "build", "mortgage", "--out", "x"])
    assert res.exit_code != 0 and "credit-scoring" in res.output
    res = CliRunner().invoke(build_app(), ["demo", "--help"])
    assert res.exit_code == 0 and "build" in res.output and "run" in res.output
