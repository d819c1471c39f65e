"""``finmlsec keys``, ``finmlsec feedback`` and ``finmlsec serve`` argument checks."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from finmlsec.cli.main import build_app
from finmlsec.errors import FinmlsecError
from finmlsec.gateway.audit import open_writer, read_entries
from finmlsec.gateway.audit_verify import verify_chain
from finmlsec.gateway.feedback import feedback_row, submission_entry
from finmlsec.store.gateway import GatewayDB

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    """Run a command; a FinmlsecError becomes exit code 2 and its message, as in ``main``."""
    r = runner.invoke(build_app(), list(args))
    if isinstance(r.exception, FinmlsecError):
        return 2, str(r.exception)
    return r.exit_code, r.output


def test_keys_create_list_revoke(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gw.db'}"
    code, out = invoke("keys", "create", "--org", "bank", "--role", "system_user", "--db", url,
                       "--json")
    assert code == 0
    made = json.loads(out)
    db = GatewayDB(url)
    assert db.verify_token(made["key"]).org == "bank"
    code, out = invoke("keys", "list", "--db", url, "--json")
    listed = json.loads(out)
    assert [k["key_id"] for k in listed] == [made["key_id"]] and made["key"] not in out
    assert invoke("keys", "revoke", made["key_id"], "--db", url)[0] == 0
    assert db.verify_token(made["key"]) is None
    code, out = invoke("keys", "revoke", made["key_id"], "--db", url)
    assert code == 2 and "no active key" in out
    code, out = invoke("keys", "create", "--org", "bank", "--role", "root", "--db", url)
    assert code == 2 and "unknown role 'root'" in out
    actions = [e["action"] for e in read_entries(db)]
    assert actions == ["keys.create", "keys.revoke"] and verify_chain(db).ok


def test_feedback_review_from_the_command_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gw.db'}"
    db = GatewayDB(url)
    w = open_writer(db)
    ids = []
    for label in ("good", "bad"):
        row = feedback_row(key_id="k", org="bank", record={"age": 40}, label=label,
                           model_label="good", model_confidence=0.7, flags=[])
        w.append_sync(submission_entry(row), feedback=row)
        ids.append(row["id"])
    code, out = invoke("feedback", "list", "--db", url)
    assert code == 0 and ids[0] in out and ids[1] in out
    assert invoke("feedback", "approve", ids[0], "--db", url, "--note", "ok")[0] == 0
    assert invoke("feedback", "reject", ids[1], "--db", url)[0] == 0
    code, out = invoke("feedback", "approve", ids[1], "--db", url)
    assert code == 2 and "already rejected" in out
    code, out = invoke("feedback", "list", "--status", "approved", "--format", "json", "--db", url)
    approved = json.loads(out)
    assert [a["id"] for a in approved] == [ids[0]] and approved[0]["record"] == {"age": 40}
    assert approved[0]["note"] == "ok" and approved[0]["reviewed_by"].startswith("cli:")
    assert verify_chain(db).ok
    lists = [e for e in read_entries(db) if e["action"] == "feedback.list"]
    assert [(e["detail"]["status"], e["detail"]["format"], e["detail"]["reports"])
            for e in lists] == [("quarantined", "text", ids), ("approved", "json", [ids[0]])]
    assert all(e["role"] == "cli" and e["detail"]["by"].startswith("cli:") for e in lists)


def test_serve_refuses_bad_arguments(tmp_path: Path) -> None:
    code, out = invoke("serve", str(tmp_path / "missing.yaml"))
    assert code == 2 and "not found" in out
    code, out = invoke("serve", "demo", "--workers", "2")
    assert code == 2 and "needs --redis" in out
    bad = tmp_path / "policy.yaml"
    bad.write_text("output:\n  mode: blur\n")
    code, out = invoke("serve", "demo", "--policy", str(bad), "--db", "sqlite://")
    assert code == 2 and "output.mode" in out


def test_serving_the_model_a_spec_names(tmp_path: Path) -> None:
    import asyncio

    import httpx
    import skops.io as sio

    from finmlsec.gateway import Settings, create_app
    from finmlsec.gateway.demo import credit_scoring_model

    m = credit_scoring_model(seed=0)
    est = m.target.estimator
    sio.dump(est, tmp_path / "model.skops")
    (tmp_path / "spec.yaml").write_text(
        "organisations: [{id: bank}, {id: customer}]\n"
        "roles: {training_data_provider: bank, system_user: customer,\n"
        "        model_generator: bank, model_operator: bank}\n"
        "model: {format: skops, path: model.skops, input_kind: tabular}\n"
        "data: {dataset: german_credit, seed: 0}\n"
    )
    app = create_app(Settings(db_url="sqlite://"), spec=tmp_path / "spec.yaml")
    token = app.state.gateway.db.create_key(org="customer", role="system_user").token
    bank = app.state.gateway.db.create_key(org="bank", role="system_user").token
    rows = json.loads(m.heldout.iloc[:5].to_json(orient="records"))

    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
            fb = {"record": rows[0], "label": "bad"}
            return [
                await c.post("/v1/predict", json={"records": rows},
                             headers={"Authorization": f"Bearer {token}"}),
                await c.post("/v1/feedback", json=fb, headers={"Authorization": f"Bearer {token}"}),
                await c.post("/v1/feedback", json=fb, headers={"Authorization": f"Bearer {bank}"}),
            ]

    r, from_user, from_bank = asyncio.run(go())
    assert r.status_code == 200
    assert r.json()["labels"] == [str(v) for v in est.predict(m.heldout.iloc[:5])]
    # flow G: only the spec's system users send false-prediction data
    assert from_user.status_code == 202 and from_bank.status_code == 403
    (tmp_path / "nomodel.yaml").write_text(
        "organisations: [{id: bank}]\n"
        "roles: {training_data_provider: bank, system_user: bank,\n"
        "        model_generator: bank, model_operator: bank}\n"
    )
    code, out = invoke("serve", str(tmp_path / "nomodel.yaml"), "--db", "sqlite://")
    assert code == 2 and "no model section" in out
