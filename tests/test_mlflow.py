"""Models from an MLflow registry and scan results logged to MLflow, against a local MLflow
tracking store (SQLite in a temporary directory, no server). Needs the ``mlflow`` extra (installed
by ``make test``; under CI=true a missing extra fails these tests)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import unavailable
from finmlsec.cli.main import main
from scan_support import SPEC, build_credit_system

pytestmark = pytest.mark.slow

HAVE_MLFLOW = importlib.util.find_spec("mlflow") is not None

MLFLOW_SPEC = SPEC.replace("model: {{format: skops, path: model.skops}}", "model: {model}")


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A local MLflow store holding the small credit model twice: logged with skops
    (``models:/credit/1``) and with cloudpickle (``models:/credit-pickled/1``)."""
    if not HAVE_MLFLOW:
        unavailable("mlflow is not installed (extra 'mlflow')")
    import mlflow
    import mlflow.sklearn
    import skops.io as sio
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("mlflow")
    spec = build_credit_system(root / "system")
    model = sio.load(spec.parent / "model.skops", trusted=sio.get_untrusted_types(
        file=spec.parent / "model.skops"))
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.create_experiment("training", artifact_location=(root / "artifacts").as_uri())
    # where the scans' results go (a new experiment's artifacts would go to ./mlruns)
    client.create_experiment("model-validation", artifact_location=(root / "logged").as_uri())
    client.create_experiment("portfolio-validation",
                             artifact_location=(root / "portfolio").as_uri())
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        with mlflow.start_run(experiment_id=exp) as run:
            mlflow.sklearn.log_model(model, name="model", serialization_format="skops",
                                     skops_trusted_types=["numpy.dtype"],
                                     registered_model_name="credit", pip_requirements=[])
            mlflow.sklearn.log_model(model, name="pickled", serialization_format="cloudpickle",
                                     registered_model_name="credit-pickled", pip_requirements=[])
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)

    def spec_for(name: str, model_ref: str) -> Path:
        path = root / "system" / f"{name}.yaml"
        path.write_text(MLFLOW_SPEC.format(seed=0, model=model_ref), "utf-8")
        return path

    return {
        "root": root, "uri": uri, "run_id": run.info.run_id, "model": model,
        "skops": spec_for("registered", f"{{uri: 'models:/credit/1', tracking_uri: '{uri}'}}"),
        "pickled": spec_for("pickled",
                            f"{{uri: 'models:/credit-pickled/1', tracking_uri: '{uri}'}}"),
    }


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def test_a_registered_model_is_scanned_and_the_results_logged_to_mlflow(
        registry: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mlflow import MlflowClient

    code, out, err = _main(
        capsys, "scan", str(registry["skops"]), "--profile", "quick", "--executor", "serial",
        "--db", str(tmp_path / "s.db"), "--attack", "extraction.equation", "--defence",
        "confidence.round", "--json", "--mlflow-experiment", "model-validation",
        "--mlflow-tracking-uri", registry["uri"])
    assert code == 0, err
    doc = json.loads(out)
    infer = next(t for t in doc["threats"] if t["attack"] == "infer_model")
    assert infer["success"] == pytest.approx(1.0)  # the registered model was the one attacked

    client = MlflowClient(tracking_uri=registry["uri"])
    exp = client.get_experiment_by_name("model-validation")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.data.tags["finmlsec.paper_type"] == "7"
    assert run.data.tags["finmlsec.run_id"] == doc["run"]["id"]
    assert run.data.metrics["success.model_io.infer_model"] == pytest.approx(1.0)
    assert run.data.metrics["risk.model_io.infer_model"] == 3.0  # high
    assert run.data.metrics["max_risk"] == 3.0
    names = {a.path for a in client.list_artifacts(run.info.run_id, "finmlsec")}
    assert names == {"finmlsec/report.html", "finmlsec/report.json"}
    local = client.download_artifacts(run.info.run_id, "finmlsec/report.json", str(tmp_path))
    assert json.loads(Path(local).read_text())["run"]["id"] == doc["run"]["id"]


def test_a_portfolio_with_a_registry_entry_logs_each_system_and_the_portfolio(
        registry: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mlflow import MlflowClient

    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(f"""\
defaults: {{profile: quick, attacks: [extraction.equation], defences: [confidence.round]}}
systems:
  - {registry['root'] / 'system' / 'spec.yaml'}
  - id: credit-registered
    spec: {registry['root'] / 'system' / 'spec.yaml'}
    model: {{uri: 'models:/credit/1', tracking_uri: '{registry['uri']}'}}
""", "utf-8")
    code, out, err = _main(
        capsys, "scan", str(inventory), "--executor", "serial", "--db", str(tmp_path / "s.db"),
        "--out", str(tmp_path / "rep"), "--json", "--mlflow-experiment", "portfolio-validation",
        "--mlflow-tracking-uri", registry["uri"])
    assert code == 0, err
    doc = json.loads(out)
    by_id = {s["id"]: s for s in doc["systems"]}
    assert by_id["credit-registered"]["model_uri"] == "models:/credit/1"
    # the same model from the file and from the registry: the same measured risk
    assert by_id["credit-registered"]["max_risk"] == by_id["system"]["max_risk"] == "high"

    client = MlflowClient(tracking_uri=registry["uri"])
    exp = client.get_experiment_by_name("portfolio-validation")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 3  # one per system and one for the portfolio
    pid = doc["portfolio"]["id"]
    assert all(r.data.tags["finmlsec.portfolio_id"] == pid for r in runs)
    systems = {r.data.tags.get("finmlsec.system_id"): r for r in runs}
    assert systems["credit-registered"].data.metrics["risk.model_io.infer_model"] == 3.0
    (pf_run,) = [r for r in runs if "finmlsec.system_id" not in r.data.tags]
    names = {a.path for a in client.list_artifacts(pf_run.info.run_id, "finmlsec")}
    assert names == {"finmlsec/portfolio.html", "finmlsec/portfolio.md",
                     "finmlsec/portfolio.json"}


def test_a_pickled_flavour_is_refused_unless_trusted(
        registry: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from finmlsec.scenario import load_scenario

    code, _, err = _main(capsys, "scan", str(registry["pickled"]), "--profile", "quick",
                         "--db", str(tmp_path / "s.db"), "--quiet")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert "refusing to load the MLflow model 'models:/credit-pickled/1': its flavour 'sklearn' " \
           "is saved with cloudpickle" in lines[0] and "--trust-pickle" in lines[0]
    # trusted (the scan's flag, or trusted: true in the spec), MLflow's loader unpickles it
    sc = load_scenario(registry["pickled"], trust_pickle=True)
    X = sc.test.X.iloc[:20]
    assert sc.target.predict(X).tolist() == registry["model"].predict(X).tolist()


def test_a_runs_uri_loads_the_model_logged_in_that_run(registry: dict[str, Any]) -> None:
    from finmlsec.datasets import load
    from finmlsec.spec import ModelRef
    from finmlsec.targets.load import load_target

    ref = ModelRef(uri=f"runs:/{registry['run_id']}/model", tracking_uri=registry["uri"])
    assert ref.format == "mlflow"
    target = load_target(ref)
    X = load("german_credit").X.iloc[:50]
    np.testing.assert_allclose(target.predict_proba(X), registry["model"].predict_proba(X))


def test_an_onnx_flavour_is_run_by_onnxruntime(registry: dict[str, Any]) -> None:
    """The safest flavour MLflow offers is taken: an ONNX model loads without unpickling."""
    import mlflow
    import mlflow.onnx
    from mlflow import MlflowClient
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    from finmlsec.spec import ModelRef
    from finmlsec.targets.load import load_target
    from finmlsec.targets.onnx_model import OnnxTarget

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    onx = to_onnx(model, X, options={"zipmap": False})
    uri = registry["uri"]
    exp = MlflowClient(tracking_uri=uri).get_experiment_by_name("training").experiment_id
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        with mlflow.start_run(experiment_id=exp):
            mlflow.onnx.log_model(onx, name="onnx", registered_model_name="scores-onnx",
                                  pip_requirements=[])
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
    target = load_target(ModelRef(uri="models:/scores-onnx/1", tracking_uri=uri,
                                  input_kind="image"))
    assert isinstance(target, OnnxTarget)
    np.testing.assert_allclose(target.predict_proba(X[:20]), model.predict_proba(X[:20]),
                               atol=1e-5)


@pytest.mark.parametrize(("model", "message"), [
    ("{uri: 'models:/credit/1', path: model.skops}", "takes no 'path'"),
    ("{uri: 's3://bucket/model'}", "needs 'uri: models:/NAME/VERSION'"),
    ("{format: skops, uri: 'models:/credit/1'}", "it takes no format 'skops'"),
    ("{format: skops, path: m.skops, tracking_uri: 'sqlite:///x.db'}",
     "'tracking_uri' is only for an MLflow model"),
])
def test_bad_mlflow_model_sections_are_one_line(tmp_path: Path, model: str,
                                                message: str) -> None:
    from finmlsec.errors import SpecError
    from finmlsec.spec import parse_spec

    with pytest.raises(SpecError, match="model") as exc:
        parse_spec(MLFLOW_SPEC.format(seed=0, model=model), source="spec.yaml")
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_an_unknown_registered_model_is_one_line(registry: dict[str, Any], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(MLFLOW_SPEC.format(
        seed=0, model=f"{{uri: 'models:/nope/3', tracking_uri: '{registry['uri']}'}}"), "utf-8")
    code, _, err = _main(capsys, "scan", str(spec), "--db", str(tmp_path / "s.db"), "--quiet")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "cannot fetch the MLflow model 'models:/nope/3'" in err
