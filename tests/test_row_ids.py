"""Row-id columns in a bank's export (pandas' ``Unnamed: 0``, a ``loan_id``): ``schema infer``
puts them under ``ids``, not features; the scan and the gateway leave them out of the model's
input, unless the model was trained with one: then it stays an input, frozen, with one warning.
Before, both were features: the gateway demanded them in every request and attacks changed
them."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from bank_files import build_rowids, run_cli, scan_quick
from finmlsec.datasets.schema_infer import row_ids
from loopback import serve


@pytest.fixture(scope="module")
def loans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_rowids(tmp_path_factory.mktemp("rowids"))


@pytest.fixture(scope="module")
def loans_with_id(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_rowids(tmp_path_factory.mktemp("rowids_read"), with_id=True)


def test_schema_infer_puts_the_row_ids_under_ids_and_keeps_a_unique_income(
        loans: dict[str, Path], tmp_path: Path) -> None:
    text = loans["schema"].read_text("utf-8")
    doc = yaml.safe_load(text)
    assert doc["ids"] == ["Unnamed: 0", "loan_id"]
    names = [f["name"] for f in doc["features"]]
    assert names == ["income", "amount", "term", "age"]
    raw = pd.read_csv(loans["data"])
    assert raw["income"].nunique() == len(raw)  # distinct in every row, and still a feature
    assert "left out of the model's input" in text and "To make one a feature" in text
    assert "#   as a feature: - {name: loan_id, type: integer" in text
    code, said = run_cli(["schema", "infer", str(loans["data"]), "--label", "decision",
                          "-o", str(tmp_path / "again.yaml")])
    assert code == 0 and "4 fields, row id(s) ['Unnamed: 0', 'loan_id'] left out" in said, said


def test_a_unique_number_is_not_an_id_but_a_running_index_is() -> None:
    rng = np.random.default_rng(0)
    n = 300
    X = pd.DataFrame({
        "income": np.sort(rng.uniform(20_000, 90_000, n)),      # distinct, sorted, continuous
        "amount": rng.permutation(np.arange(n) * 25 + 1000),    # distinct integers, not a run
        "customer_id": [f"C{i:05d}" for i in rng.permutation(n)],
        "paid": rng.integers(0, 2, n),                          # not '<sep>id'
        "step": np.arange(1, n + 1),                            # counts the rows: an index
        "X": rng.permutation(n),                                # R's row names, shuffled
        "account_id": rng.integers(0, 5, n),                    # an id's name, few levels
    })
    assert sorted(row_ids(X)) == ["X", "customer_id", "step"]


def test_the_scan_leaves_the_ids_out_and_runs(loans: dict[str, Path], tmp_path: Path) -> None:
    from finmlsec.scenario import load_scenario

    sc = load_scenario(loans["spec"])
    assert sc.schema is not None and sc.schema.dropped_ids == ["Unnamed: 0", "loan_id"]
    for part in (sc.train, sc.test, sc.population):
        assert part is not None and list(part.X.columns) == ["income", "amount", "term", "age"]
    code, output, units = scan_quick(loans["spec"], tmp_path / "s.db", "evasion.constrained",
                                     "membership.metric")
    assert code in (0, 1), output
    done = {u.unit_id.rsplit("/", 1)[-1]: u for u in units}
    assert set(done) >= {"evasion.constrained", "membership.metric"}, list(done)
    assert all(u.status == "done" for u in units), [(u.unit_id, u.status) for u in units]
    assert done["evasion.constrained"].outcome is not None


def _gateway(spec: Path, db: Path) -> tuple[object, str]:
    from finmlsec.gateway.app import create_app
    from finmlsec.gateway.settings import Settings

    app = create_app(Settings(db_url=f"sqlite:///{db}"), spec=spec)
    gw = app.state.gateway
    return app, gw.db.create_key(org="public", role="system_user").token


def test_the_gateway_takes_a_request_without_the_ids(loans: dict[str, Path],
                                                     tmp_path: Path) -> None:
    test = pd.read_csv(loans["test"])
    record = {k: (v.item() if hasattr(v, "item") else v)
              for k, v in test.iloc[0].items()}
    plain = {k: record[k] for k in ("income", "amount", "term", "age")}
    app, token = _gateway(loans["spec"], tmp_path / "gw.db")
    auth = {"Authorization": f"Bearer {token}"}
    with serve(app) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
        without = c.post("/v1/predict", json={"record": plain}, headers=auth)
        sent = c.post("/v1/predict", json={"record": {**plain, "loan_id": 1,
                                                      "Unnamed: 0": 2}}, headers=auth)
        short = c.post("/v1/predict", json={"record": {k: v for k, v in plain.items()
                                                       if k != "amount"}}, headers=auth)
    app.state.gateway.close()
    assert without.status_code == 200, without.text
    assert sent.status_code == 200, sent.text  # an id a client still sends is dropped
    assert without.json()["probabilities"] == sent.json()["probabilities"]
    assert short.status_code == 422 and "missing field 'amount'" in short.json()["detail"]
    import skops.io as sio

    model = sio.load(loans["model"], trusted=sio.get_untrusted_types(file=loans["model"]))
    want = model.predict_proba(pd.DataFrame([plain]))[0]
    assert np.allclose(without.json()["probabilities"][0], want, atol=1e-6)


def test_a_model_trained_with_the_id_keeps_it_frozen_and_warns_once(
        loans_with_id: dict[str, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from finmlsec.scenario import _WARNED, load_scenario

    _WARNED.clear()
    sc = load_scenario(loans_with_id["spec"])
    load_scenario(loans_with_id["spec"])
    err = capsys.readouterr().err
    assert err.count("warning: the model was trained on the row id(s) ['loan_id']") == 1
    assert len([ln for ln in err.splitlines() if "row id" in ln]) == 1
    assert sc.schema is not None
    assert sc.schema.names == ["loan_id", "income", "amount", "term", "age"]
    assert sc.schema.dropped_ids == ["Unnamed: 0"]
    f = sc.schema["loan_id"]
    assert not f.mutable and f.min is None and f.max is None
    # no attack changes it: constrained evasion's changes leave loan_id as it was
    from finmlsec.attacks.evasion import ConstrainedEvasion
    from finmlsec.targets.oracle import Oracle

    assert sc.target is not None and sc.test is not None
    X = sc.test.X.iloc[:30].reset_index(drop=True)
    out = ConstrainedEvasion(seed=0, target_class="approve").generate(
        Oracle(sc.target, "label"), X, schema=sc.schema, population=sc.population.X)
    changed = (out.X_adv[["income", "amount", "age"]].to_numpy() != X[["income", "amount",
                                                                       "age"]].to_numpy())
    assert changed.any()  # the attack did change records: only never the id
    assert (out.X_adv["loan_id"].to_numpy() == X["loan_id"].to_numpy()).all()
    test = pd.read_csv(loans_with_id["test"])
    plain = {k: (v.item() if hasattr(v, "item") else v) for k, v in test.iloc[0].items()
             if k in ("income", "amount", "term", "age")}
    app, token = _gateway(loans_with_id["spec"], tmp_path / "gw.db")
    auth = {"Authorization": f"Bearer {token}"}
    with serve(app) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
        missing = c.post("/v1/predict", json={"record": plain}, headers=auth)
        full = c.post("/v1/predict", json={"record": {**plain, "loan_id": 700_123}},
                      headers=auth)
    app.state.gateway.close()
    assert missing.status_code == 422
    assert missing.json()["detail"] == "record 0: missing field 'loan_id'"
    assert full.status_code == 200, full.text  # a new id, outside the file's range, is taken
