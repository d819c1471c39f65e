"""``finmlsec serve --from-scan RUN``: a real server on loopback serves the system a quick scan of
the credit-scoring model tested, with the output defence the scan recommended; a scan that
recommended something that cannot be served online is refused in one line naming it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from finmlsec.gateway.demo import credit_scoring_model
from scan_support import build_credit_system
from test_audit_integrity import cli
from test_gateway_server import Server


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A quick scan of the credit system (equation solving, label-only output; the bank accepts
    losing up to 0.5 of ROC AUC): the scan recommends confidence.label_only."""
    from finmlsec.scan import get_profile, make_executor, run_scan, start_scan
    from finmlsec.store import Store

    root = tmp_path_factory.mktemp("fromscan")
    spec = build_credit_system(root / "credit")
    db = str(root / "finmlsec.db")
    store = Store.open(db)
    prof = get_profile("quick").model_copy(update={
        "only": ("extraction.equation",), "only_defences": ("confidence.label_only",),
        "max_utility_drop": 0.5})
    rid = start_scan(spec, store=store, profile=prof, seed=0, include_accepted=True)
    run_scan(store, rid, executor=make_executor("serial"))
    return root, db, rid


def test_serve_from_scan_serves_what_the_scan_recommended(
    scanned: tuple[Path, str, str], tmp_path: Path,
) -> None:
    root, db, rid = scanned
    out = cli("report", rid, "--db", db, "--format", "json", "-o", str(tmp_path / "scan.json"))
    assert out.returncode == 0, out.stderr
    doc = json.loads((tmp_path / "scan.json").read_text("utf-8"))
    infer = next(t for t in doc["threats"] if t["attack"] == "infer_model")
    assert infer["best"] == ["confidence.label_only"]
    url = f"sqlite:///{tmp_path / 'gw.db'}"
    user = json.loads(cli("keys", "create", "--org", "bank", "--db", url, "--json").stdout)
    record = json.loads(credit_scoring_model(seed=0).heldout.iloc[:1]
                        .to_json(orient="records"))[0]
    log = tmp_path / "server.log"
    server = Server(["--db", url, "--from-scan", rid[:12], "--scan-db", db], log, spec=None)
    try:
        r = httpx.post(f"{server.url}/v1/predict", json={"record": record}, timeout=10,
                       headers={"Authorization": f"Bearer {user['key']}"})
    finally:
        server.stop()
    assert r.status_code == 200, r.text
    assert r.json()["probabilities"] is None and r.json()["labels"]  # label-only, as measured
    text = log.read_text()
    assert (f"output: confidence.label_only (recommended by scan {rid} against "
            "infer_model@model_io)") in text
    assert "extraction: PRADA" in text  # the rest: the spec's secure defaults

    # a recommendation that changes training cannot be served: one line naming it, exit 2
    infer["best"] = ["robust.bagging"]
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "credit-scan.json").write_text(json.dumps(doc), encoding="utf-8")
    bad = cli("serve", "--from-scan", str(tmp_path / "dir"), "--db", url)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "cannot be served online: robust.bagging (against infer_model@model_io" in bad.stderr
    infer["best"] = ["input_screen"]
    (tmp_path / "dir" / "credit-scan.json").write_text(json.dumps(doc), encoding="utf-8")
    bad = cli("serve", "--from-scan", str(tmp_path / "dir" / "credit-scan.json"), "--db", url)
    assert bad.returncode == 2 and "input_screen (against" in bad.stderr
    both = cli("serve", "--from-scan", rid, "--scan-db", db, "--policy", str(root / "p.yaml"))
    assert both.returncode == 2 and "not both" in both.stderr
    other = cli("serve", "demo", "--from-scan", rid, "--scan-db", db)
    assert other.returncode == 2 and "leave SPEC out" in other.stderr
