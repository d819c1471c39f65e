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
    log = tmp_path / "server.log"
    r = _predict_one(url, log, ["--from-scan", rid[:12], "--scan-db", db])
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
    infer["best"] = ["confidence.noise"]
    (tmp_path / "dir" / "credit-scan.json").write_text(json.dumps(doc), encoding="utf-8")
    bad = cli("serve", "--from-scan", str(tmp_path / "dir" / "credit-scan.json"), "--db", url)
    assert bad.returncode == 2 and "confidence.noise (against" in bad.stderr
    both = cli("serve", "--from-scan", rid, "--scan-db", db, "--policy", str(root / "p.yaml"))
    assert both.returncode == 2 and "not both" in both.stderr
    other = cli("serve", "demo", "--from-scan", rid, "--scan-db", db)
    assert other.returncode == 2 and "leave SPEC out" in other.stderr


def test_serve_from_scan_refuses_a_model_the_scan_did_not_measure(
    scanned: tuple[Path, str, str], tmp_path: Path,
) -> None:
    """The scan records the SHA-256 of the model it measured; serving its guards in front of
    another model file (retrained after the scan, same spec) is refused in one line, exit 2,
    unless the operator passes --accept-model-change (then served, with a warning)."""
    import hashlib
    import shutil

    root, db, rid = scanned
    out = cli("report", rid, "--db", db, "--format", "json", "-o", str(tmp_path / "scan.json"))
    assert out.returncode == 0, out.stderr
    doc = json.loads((tmp_path / "scan.json").read_text("utf-8"))
    scanned_spec = Path(doc["run"]["spec_path"])
    recorded = doc["run"]["options"]["inputs"]["model.path"]
    assert recorded == hashlib.sha256((scanned_spec.parent / "model.skops").read_bytes()
                                      ).hexdigest()
    # the scanned system, moved; then its model file replaced by one retrained on another split
    system = tmp_path / "system"
    shutil.copytree(scanned_spec.parent, system)
    doc["run"]["spec_path"] = str(system / "spec.yaml")
    (tmp_path / "moved.json").write_text(json.dumps(doc), encoding="utf-8")
    retrained = build_credit_system(tmp_path / "retrained", seed=1).parent / "model.skops"
    shutil.copyfile(retrained, system / "model.skops")
    url = f"sqlite:///{tmp_path / 'gw.db'}"

    bad = cli("serve", "--from-scan", str(tmp_path / "moved.json"), "--db", url)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert f"is not the one scan {rid} measured (sha256 {recorded[:12]}" in bad.stderr
    assert "--accept-model-change" in bad.stderr
    alone = cli("serve", "demo", "--accept-model-change", "--db", url)
    assert alone.returncode == 2 and "goes with --from-scan" in alone.stderr

    log = tmp_path / "server.log"
    r = _predict_one(url, log, ["--from-scan", str(tmp_path / "moved.json"),
                                "--accept-model-change"])
    assert r.status_code == 200, r.text
    assert r.json()["probabilities"] is None and r.json()["labels"]  # the scan's guards
    text = log.read_text()
    assert "served with that scan's guards anyway (--accept-model-change)" in text


def test_the_model_hash_is_taken_from_what_the_scan_or_dossier_recorded(
    scanned: tuple[Path, str, str],
) -> None:
    """Without a hash recorded with the run, the dossier's (hashed when written) is used; with
    none at all, serving is not refused but warned about."""
    from finmlsec.errors import ConfigError
    from finmlsec.gateway.fromscan import check_model, load_scan_document, recorded_model_hash

    root, db, rid = scanned
    doc = load_scan_document(rid, db)
    spec = doc["run"]["spec_path"]
    assert recorded_model_hash(doc)[1] == "recorded by the scan"
    assert check_model(doc, spec) == []
    del doc["run"]["options"]["inputs"]
    assert recorded_model_hash(doc) == (None, "")
    (warning,) = check_model(doc, spec)
    assert f"scan {rid} recorded no hash of the model it measured" in warning
    doc["dossier_inputs"] = [{"role": "spec", "path": spec, "sha256": "0" * 64},
                             {"role": "model", "path": "model.skops", "sha256": "f" * 64}]
    with pytest.raises(ConfigError, match=r"sha256 ffffffffffff\.\.\., in the dossier"):
        check_model(doc, spec)
    assert "anyway" in check_model(doc, spec, accept_change=True)[0]
    doc["dossier_inputs"][1]["sha256_at_scan"] = "e" * 64  # the digest the scan read wins
    assert recorded_model_hash(doc) == ("e" * 64, "in the dossier, as the scan read it")
    doc["bundle_inputs"] = {"spec": "0" * 64, "model.path": "d" * 64}  # a run's bundle before
    assert recorded_model_hash(doc) == ("d" * 64, "in the scan's bundle")


def _predict_one(url: str, log: Path, serve_args: list[str]) -> httpx.Response:
    """A new system user's key, a server started with ``serve_args`` on the gateway store
    ``url``, and one held-out credit applicant sent to it: the response."""
    user = json.loads(cli("keys", "create", "--org", "bank", "--db", url, "--json").stdout)
    record = json.loads(credit_scoring_model(seed=0).heldout.iloc[:1]
                        .to_json(orient="records"))[0]
    server = Server(["--db", url, *serve_args], log, spec=None)
    try:
        return httpx.post(f"{server.url}/v1/predict", json={"record": record}, timeout=10,
                          headers={"Authorization": f"Bearer {user['key']}"})
    finally:
        server.stop()
