"""The bank's cut-off (``model.decision_threshold``) on every model format a spec can load.

One 95/5 loan file (four numeric features, ``bad`` 5%) and one model (a scaled logistic
regression), stored as skops, as an ONNX export (skl2onnx), in an MLflow store (skops flavour),
served by the gateway (``finmlsec serve``'s app on a real loopback HTTP server) and read back as
``format: remote``, and a torch MLP trained on the same file. For each, the loaded target decides
``bad`` exactly where its own P(bad) reaches the cut-off, and an evasion scan's victims are the
applicants refused at it; a format that answers labels only refuses the cut-off in one line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bank_files import run_cli
from bank_files import scan_quick as _scan
from loopback import serve

CUT = 0.10
N = 1600
FEATURES = ["income", "debt_ratio", "history", "utilisation"]
ROLES = ("organisations: [{id: bank}, {id: public}]\n"
         "roles: {training_data_provider: bank, system_user: public, model_generator: bank,\n"
         "        model_operator: bank}\n"
         "stakes: {training_data: personal, model_value: high, harm_of_wrong_output: high}\n")
DATA = ("data:\n  path: loans.csv\n  label: status\n  schema: schema.yaml\n"
        "  splits: {train: train.csv, test: test.csv, population: population.csv}\n")
TORCH = ("torch: {architecture: mlp, kwargs: {in_features: 4, n_classes: 2, hidden: [16]}, "
         "train: {epochs: 30, random_state: 0}}")


def loans(n: int = N, seed: int = 0) -> pd.DataFrame:
    """95/5 good/bad: P(bad) rises with the debt ratio and utilisation, falls with income."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    z = -3.6 - 0.9 * X[:, 0] + 1.1 * X[:, 1] - 0.6 * X[:, 2] + 0.8 * X[:, 3]
    bad = rng.random(n) < 1.0 / (1.0 + np.exp(-z))
    frame = pd.DataFrame(np.round(X, 4), columns=FEATURES)
    frame["status"] = np.where(bad, "bad", "good")
    return frame


def _pipeline() -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))


def _torch_model(train: pd.DataFrame, path: Path) -> None:
    """The MLP of TORCH trained full-batch (seeded, one thread: the machine is shared), its
    weights saved as a state_dict."""
    import torch

    from finmlsec.targets.torch import ARCHITECTURES

    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = ARCHITECTURES.get("mlp")(in_features=4, n_classes=2, hidden=[16])
    x = torch.from_numpy(train[FEATURES].to_numpy(np.float32, copy=True))
    y = torch.from_numpy((train["status"] == "good").to_numpy(np.int64))
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(300):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    torch.save(net.state_dict(), path)


def _mlflow_uri(model: Any, root: Path) -> str:
    """``model`` logged (skops) and registered as ``cut`` in a SQLite MLflow store."""
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient

    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.create_experiment("training", artifact_location=(root / "art").as_uri())
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        with mlflow.start_run(experiment_id=exp):
            mlflow.sklearn.log_model(model, name="model", serialization_format="skops",
                                     skops_trusted_types=["numpy.dtype"],
                                     registered_model_name="cut", pip_requirements=[])
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
    return uri


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    import importlib.util

    import skops.io as sio
    from sklearn.base import clone

    from finmlsec.gateway import Settings, create_app
    from messy_loans import to_onnx_bytes

    d = tmp_path_factory.mktemp("formats")
    frame = loans()
    frame.to_csv(d / "loans.csv", index=False)
    order = np.random.default_rng(1).permutation(N)
    parts = {"train": order[: N // 2], "test": order[N // 2: 3 * N // 4],
             "population": order[3 * N // 4:]}
    for name, rows in parts.items():
        frame.iloc[np.sort(rows)].to_csv(d / f"{name}.csv", index=False)
    train = pd.read_csv(d / "train.csv")
    code, out = run_cli(["schema", "infer", str(d / "loans.csv"), "--label", "status",
                         "--favourable", "good", "-o", str(d / "schema.yaml")])
    assert code == 0, out
    model = _pipeline().fit(train[FEATURES], train["status"])
    sio.dump(model, d / "model.skops")
    sio.dump(clone(model), d / "untrained.skops")
    (d / "model.onnx").write_bytes(to_onnx_bytes(model, train[FEATURES]))
    factory = "factory: {path: untrained.skops}"
    models = {
        "skops": f"{{format: skops, path: model.skops, {factory}",
        "onnx": f"{{format: onnx, path: model.onnx, {factory}",
    }
    if importlib.util.find_spec("torch") is not None:
        _torch_model(train, d / "model.pt")
        models["torch"] = ("{format: torch, path: model.pt, input_kind: tabular, "
                           f"classes: [bad, good], {TORCH}")
    if importlib.util.find_spec("mlflow") is not None:
        uri = _mlflow_uri(model, d)
        models["mlflow"] = f"{{format: mlflow, uri: 'models:/cut/1', tracking_uri: '{uri}', " \
                           f"{factory}"

    def spec(name: str, ref: str, cut: bool = True) -> Path:
        path = d / f"{name}.yaml"
        path.write_text(ROLES + "model: " + ref + (f", decision_threshold: {CUT}}}\n" if cut
                                                    else "}\n") + DATA, encoding="utf-8")
        return path

    # the gateway serving the skops model at the cut-off, as `finmlsec serve SPEC` does
    app = create_app(Settings(db_url=f"sqlite:///{d / 'gw.db'}"), spec=spec("served",
                                                                             models["skops"]))
    token = app.state.gateway.db.create_key(org="bank", role="system_user").token
    with serve(app) as port:
        remote = ("{format: remote, classes: [bad, good], remote: {url: "
                  f"'http://127.0.0.1:{port}/v1/predict', headers: {{Authorization: 'Bearer "
                  f"{token}'}}, request: {{wrap: records, record: dict}}, response: "
                  "{output: %s, path: %s}}, " + factory)
        models["remote"] = remote % ("proba", "probabilities")
        specs = {k: spec(k, v) for k, v in models.items()}
        specs["remote_labels"] = spec("remote_labels", remote % ("label", "labels"))
        plain = {k: spec(f"{k}_plain", v, cut=False) for k, v in models.items()}
        yield {"dir": d, "specs": specs, "plain": plain, "model": model,
               "url": f"http://127.0.0.1:{port}/v1/predict", "token": token}


FORMATS = ["skops", "onnx", "torch", "mlflow", "remote"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_loaded_model_decides_at_the_cut_off_and_evasion_sees_its_refusals(
        system: dict[str, Any], fmt: str, tmp_path: Path) -> None:
    from finmlsec.scenario import load_scenario

    if fmt not in system["specs"]:
        pytest.skip(f"{fmt} is not installed")
    sc = load_scenario(system["specs"][fmt])
    assert sc.target.classes_.tolist() == ["bad", "good"] and sc.cutoff is not None
    assert sc.cutoff.index == 0 and sc.cutoff.threshold == CUT
    X = sc.test.X
    P = np.asarray(sc.target.predict_proba(X), dtype=float)
    pred = np.asarray(sc.target.predict(X)).astype(str)
    expected = np.where(P[:, 0] >= CUT, "bad", "good")
    assert (pred == expected).all()
    refused = int((pred == "bad").sum())
    assert 0.05 * len(X) < refused < 0.5 * len(X)
    # at the model's own 0.5 the same scores refuse far fewer (the cut-off is what moved them)
    own = np.asarray(load_scenario(system["plain"][fmt]).target.predict(X)).astype(str)
    assert (own == "bad").sum() < refused / 3
    if fmt != "torch":  # one model, stored four ways: the same scores and decisions
        ref = system["model"].predict_proba(X)[:, 0]
        assert np.allclose(P[:, 0], ref, atol=1e-5)
        flips = np.abs(ref - CUT) > 1e-5  # float32 formats may round a score at the cut-off
        assert (pred[flips] == np.where(ref >= CUT, "bad", "good")[flips]).all()

    code, output, units = _scan(system["specs"][fmt], tmp_path / "s.db", "evasion.constrained")
    assert code == 0, output
    m = units[0].outcome["result"]["metrics"]
    # the victims are the applicants refused at the cut-off (the quick profile keeps 20)
    assert m["n_victims"] == min(20, refused) and m["n_already_at_goal"] == 0
    d = units[0].outcome["decisions"]
    assert d["threshold"] == CUT and d["classes_decided"] == 2


def test_a_label_only_model_refuses_the_cut_off_in_one_line(system: dict[str, Any],
                                                             tmp_path: Path) -> None:
    code, output = run_cli(["scan", str(system["specs"]["remote_labels"]), "--profile", "quick",
                            "--db", str(tmp_path / "s.db"), "--executor", "serial"])
    assert code == 2, output
    lines = [ln for ln in output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, output
    assert "model.decision_threshold" in lines[0] and "labels only" in lines[0]


def test_the_red_team_reads_the_gateway_s_decisions_at_the_cut_off(
        system: dict[str, Any]) -> None:
    """An attacker's oracle on the gateway (the red team's) decides on the scores it is
    answered at the bank's cut-off, as the gateway's own labels do, not at their argmax."""
    from finmlsec.gateway.redteam import GatewayOracle, GatewayTarget
    from finmlsec.scenario import load_scenario

    sc = load_scenario(system["specs"]["skops"])
    remote = GatewayTarget(system["url"], system["token"], sc.target.classes_,
                           fallback=sc.target)
    X = sc.test.X
    try:
        got = np.asarray(GatewayOracle(sc.target, remote, access="label").predict(X))
    finally:
        remote.close()
    assert (got == np.asarray(sc.target.predict(X))).all() and (got == "bad").sum() > 20
