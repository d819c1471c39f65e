"""model.factory: reference-model and poisoning attacks on an ONNX file and a remote endpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skops.io as sio
from fastapi import FastAPI, Request

from finmlsec.errors import SpecError
from finmlsec.scan import ScanContext, Unit, execute_unit
from finmlsec.scenario import load_scenario
from finmlsec.spec import parse_spec
from loopback import serve
from messy_loans import build_messy_system, pipeline

_ROLES = """organisations: [{id: bank}]
roles: {training_data_provider: bank, system_user: bank, model_generator: bank,
        model_operator: bank}
"""


@pytest.fixture(scope="module")
def messy(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("loans")
    paths = build_messy_system(d)
    sio.dump(pipeline(), d / "untrained.skops")
    text = paths["spec_onnx"].read_text().replace(
        "path: model.onnx}", "path: model.onnx, factory: {path: untrained.skops}}")
    assert "factory" in text
    (d / "spec_factory.yaml").write_text(text)
    return {**paths, "spec_factory": d / "spec_factory.yaml", "dir": d}


def _run(spec: Path, attack: str, params: dict) -> dict:
    from finmlsec.attacks import ATTACKS

    cls = ATTACKS.get(attack)
    unit = Unit(id="u", threat=cls.threat, via=cls.via, attack=attack, params=params)
    return execute_unit(ScanContext(spec_path=str(spec)), unit)


@pytest.mark.parametrize(("attack", "params", "metric"), [
    ("membership.rmia", {"n_reference": 4, "n_population": 250, "seed": 0}, "auc"),
    ("poisoning.label_flip", {"seed": 0}, "accuracy_drop"),
])
def test_onnx_model_with_a_skops_factory_runs_the_attacks_as_the_sklearn_original(
        messy: dict[str, Path], attack: str, params: dict, metric: str) -> None:
    without = _run(messy["spec_onnx"], attack, params)
    assert without["status"] == "skipped" and "model_factory" in without["error"]
    onnx = _run(messy["spec_factory"], attack, params)
    original = _run(messy["spec"], attack, params)
    assert onnx["status"] == "done" == original["status"], onnx["error"]
    a, b = onnx["result"], original["result"]
    # the ONNX export computes in float32: the same attack measures the same, within noise
    assert abs(a["success"] - b["success"]) <= 0.02
    assert abs(a["metrics"][metric] - b["metrics"][metric]) <= 0.02
    assert np.isfinite(a["metrics"][metric])


def test_the_factory_trains_with_the_columns_cast_as_the_model_was_trained(
        messy: dict[str, Path]) -> None:
    sc = load_scenario(messy["spec_factory"])
    model = sc.model_factory().fit(sc.train.X, sc.train.y)
    # codes held as text by the scan reach the one-hot encoder as the integers it learnt
    names = np.asarray(sc.target.classes_)[model.predict(sc.test.X)]
    agree = np.mean(names == sc.target.predict(sc.test.X))
    assert agree > 0.97


def _spec(d: Path, factory: str, model: str = "{format: onnx, path: model.onnx") -> Path:
    p = d / "s.yaml"
    p.write_text(_ROLES + f"model: {model}, factory: {factory}}}\n"
                 "data: {path: loans.csv, label: decision, schema: schema.yaml}\n")
    return p


def test_factory_errors_name_the_yaml_path(messy: dict[str, Path], tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegression

    d = messy["dir"]
    with pytest.raises(SpecError, match=r"s\.yaml: model\.factory\.path: .*missing\.skops.*"
                                        "does not exist"):
        load_scenario(_spec(d, "{path: missing.skops}"))
    sio.dump(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), d / "fitted.skops")
    with pytest.raises(SpecError, match=r"model\.factory\.path: .*fitted LogisticRegression.*"
                                        "must be unfitted"):
        load_scenario(_spec(d, "{path: fitted.skops}"))
    (d / "notskops.skops").write_bytes(b"plain text")
    with pytest.raises(SpecError, match=r"model\.factory\.path: .*not a skops file"):
        load_scenario(_spec(d, "{path: notskops.skops}"))
    with pytest.raises(SpecError, match=r"model\.factory .*refusing to import "
                                        "'sklearn.linear_model:LogisticRegression'"):
        parse_spec(_ROLES + "model: {format: onnx, path: m.onnx, factory: "
                   "{callable: 'sklearn.linear_model:LogisticRegression'}}", source="s.yaml")
    with pytest.raises(SpecError, match=r"model\.factory\.callable: .*StandardScaler.*"
                                        "no predict_proba"):
        load_scenario(_spec(d, "{callable: 'sklearn.preprocessing:StandardScaler', "
                               "trusted: true}"))
    with pytest.raises(SpecError, match=r"model\.factory\.callable: cannot import module "
                                        "'no_such_pkg_x'"):
        load_scenario(_spec(d, "{callable: 'no_such_pkg_x:make', trusted: true}"))
    with pytest.raises(SpecError, match="exactly one of 'path'"):
        parse_spec(_ROLES + "model: {format: onnx, path: m.onnx, factory: {}}")


def test_a_trusted_callable_factory_is_called_for_each_model(messy: dict[str, Path]) -> None:
    sc = load_scenario(_spec(messy["dir"], "{callable: 'messy_loans:pipeline', trusted: true}"))
    a, b = sc.model_factory(), sc.model_factory()
    assert a is not b
    assert not hasattr(a, "classes_")
    fitted = a.fit(sc.train.X, sc.train.y)
    assert np.mean(fitted.predict(sc.test.X) == sc.test.y) > 0.85


@pytest.fixture(scope="module")
def credit_server(tmp_path_factory: pytest.TempPathFactory):
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from finmlsec.schema import preprocessor

    d = tmp_path_factory.mktemp("remote")
    plain = parse_spec(_ROLES + "data: {dataset: german_credit, seed: 0}\n")
    sc = load_scenario(plain)
    untrained = make_pipeline(preprocessor(sc.schema, categories="schema"),
                              LogisticRegression(C=10.0, max_iter=2000))
    sio.dump(untrained, d / "untrained.skops")
    from sklearn.base import clone

    model = clone(untrained).fit(sc.train.X, sc.train.y)
    hits = {"n": 0}
    app = FastAPI()

    @app.post("/v1/predict")
    async def predict(request: Request):
        body = await request.json()
        hits["n"] += 1
        return {"predictions": model.predict_proba(pd.DataFrame(body["instances"])).tolist()}

    with serve(app) as port:
        yield d, f"http://127.0.0.1:{port}/v1/predict", hits


def test_remote_endpoint_with_a_factory_runs_lira(credit_server) -> None:
    d, url, hits = credit_server
    spec = d / "remote.yaml"
    spec.write_text(_ROLES + "model: {format: remote, classes: [bad, good], remote: {url: '"
                    + url + "', batch_size: 500}}\ndata: {dataset: german_credit, seed: 0}\n")
    params = {"n_reference": 8, "seed": 0}
    skipped = _run(spec, "membership.lira", params)
    assert skipped["status"] == "skipped" and "model_factory" in skipped["error"]
    with_factory = d / "remote_factory.yaml"  # (a scan loads each spec file once a process)
    with_factory.write_text(spec.read_text().replace("batch_size: 500}", "batch_size: 500}, "
                                                     "factory: {path: untrained.skops}"))
    before = hits["n"]
    out = _run(with_factory, "membership.lira", params)
    assert out["status"] == "done", out["error"]
    assert hits["n"] > before  # the candidates were scored through HTTP
    m = out["result"]["metrics"]
    # a C=10 logistic regression on 500 records overfits: LiRA separates members
    assert m["auc"] > 0.55


def _quick(spec: Path, db: Path) -> dict[str, Any]:
    from finmlsec.scan import get_profile, make_executor, run_scan, start_scan
    from finmlsec.store import Store

    store = Store.open(str(db))
    profile = get_profile("quick").model_copy(update={
        "only": ("membership.metric",),
        "only_defences": ("confidence.round", "dp.logistic_regression")})
    rid = start_scan(spec, store=store, profile=profile, seed=0, include_accepted=True)
    run_scan(store, rid, executor=make_executor("serial"))
    return {u.unit_id.split("/")[-1]: u for u in store.units(rid)}


@pytest.mark.slow
def test_an_onnx_model_keeps_its_output_defences_and_retraining_ones_need_a_factory(
        messy: dict[str, Path], tmp_path: Path) -> None:
    """Confidence defences wrap the deployed ONNX model itself; a defence that retrains is
    skipped without a factory, saying so, and measured with one."""
    units = _quick(messy["spec_onnx"], tmp_path / "onnx.db")
    confidence = [u for k, u in units.items() if "+confidence." in k]
    assert confidence, sorted(units)
    for u in confidence:
        assert u.status == "done", (u.unit_id, u.outcome.get("error"))
    retrained = [u for k, u in units.items() if k.endswith("+dp.logistic_regression")]
    assert retrained, sorted(units)
    for u in retrained:
        assert u.status == "skipped"
        assert "no model factory" in u.outcome["error"] and "model.factory" in u.outcome["error"]
        assert "add data splits" not in u.outcome["error"]
    with_factory = _quick(messy["spec_factory"], tmp_path / "factory.db")
    for k, u in with_factory.items():
        if "+" in k:
            assert u.status == "done", (k, u.outcome.get("error"))
    assert any(k.endswith("+dp.logistic_regression") for k in with_factory)
