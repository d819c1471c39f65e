"""``finmlsec dossier``: a self-contained, verifiable validation pack of a stored scan, with the
findings mapped to ATLAS/OWASP/NIST/EU AI Act, inputs hashed, changes since the previous
validation, tampering detected and an optional signature."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from finmlsec.cli.main import main
from finmlsec.report.dossier import sha256_file
from scan_support import build_credit_system


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


@pytest.fixture(scope="module")
def two_scans(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    root = tmp_path_factory.mktemp("dossier")
    spec = build_credit_system(root / "credit")
    db = str(root / "finmlsec.db")
    from finmlsec.scan import get_profile, make_executor, run_scan, start_scan
    from finmlsec.store import Store

    store = Store.open(db)
    for only in (("extraction.equation",), ("extraction.equation", "membership.metric")):
        prof = get_profile("quick").model_copy(update={"only": only,
                                                       "only_defences": ("confidence.round",)})
        rid = start_scan(spec, store=store, profile=prof, seed=0)
        run_scan(store, rid, executor=make_executor("serial"))
    return root, db, spec


def test_dossier_writes_verifies_and_detects_a_changed_byte(
    two_scans: tuple[Path, str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    _, db, spec = two_scans
    out = tmp_path / "pack"
    code, stdout, err = run(["dossier", "last", "--db", db, "-o", str(out)], capsys)
    assert code == 0, err
    assert {p.name for p in out.iterdir()} == {"dossier.json", "dossier.html", "manifest.json"}
    d = json.loads((out / "dossier.json").read_text("utf-8"))
    assert d["system"]["name"] == "credit" or d["system"]["name"]
    roles = {f["role"]: f for f in d["inputs"]}
    assert roles["spec"]["sha256"] == sha256_file(spec)
    assert roles["model"]["sha256"] and any(r.startswith("data:") and f["sha256"]
                                            for r, f in roles.items())
    assert d["environment"]["packages"]["scikit-learn"] and d["seeds"]["run"] == 0
    assert len(d["seeds"]["units"]) == len(d["scan"]["units"])
    finding = next(f for f in d["findings"] if f["threat_id"] == "model_io.infer_model")
    assert finding["mitre_atlas"] and finding["owasp_ml_top10"] == ["ML05"]
    assert finding["nist_ai_100_2"] and "Art. 15" in finding["eu_ai_act_art15"]
    assert finding["paper_type"] == 7 and finding["verdict"] in ("fail", "fixable", "pass", "unconfirmed")
    # the previous validation of the same system: membership inference is a new finding
    assert d["changes"]["previous_run"]
    assert [c["threat"] for c in d["changes"]["new"]] == ["infer_training_data@model_io"]
    code, stdout, err = run(["dossier", "verify", str(out)], capsys)
    assert code == 0 and "verifies" in stdout
    for name in ("dossier.json", "dossier.html"):
        raw = bytearray((out / name).read_bytes())
        raw[len(raw) // 2] ^= 1  # one changed bit
        (out / name).write_bytes(bytes(raw))
        code, _, err = run(["dossier", "verify", str(out)], capsys)
        assert code == 5 and f"{name} changed" in err and len(err.strip().splitlines()) == 1
        assert err.startswith("verification failed: dossier")
        raw[len(raw) // 2] ^= 1
        (out / name).write_bytes(bytes(raw))
    (out / "extra.txt").write_text("x", encoding="utf-8")
    code, _, err = run(["dossier", "verify", str(out)], capsys)
    assert code == 5 and "extra.txt was added" in err
    # a directory that is no dossier is the user's mistake: exit 2
    code, _, err = run(["dossier", "verify", str(tmp_path)], capsys)
    assert code == 2 and err.startswith("error:")


def test_a_signed_dossier_detects_a_rewritten_manifest(
    two_scans: tuple[Path, str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    _, db, _ = two_scans
    key = Ed25519PrivateKey.generate()
    priv, pub = tmp_path / "key.pem", tmp_path / "pub.pem"
    priv.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    out = tmp_path / "signed"
    code, _, err = run(["dossier", "last", "--db", db, "-o", str(out), "--sign-key", str(priv)],
                       capsys)
    assert code == 0, err and (out / "manifest.sig").exists()
    code, stdout, _ = run(["dossier", "verify", str(out), "--public-key", str(pub)], capsys)
    assert code == 0 and "signature valid" in stdout
    # tamper with a file and rewrite the manifest to match: only the signature catches it
    html = out / "dossier.html"
    html.write_text(html.read_text("utf-8").replace("Findings", "Findinqs"), encoding="utf-8")
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    manifest["files"]["dossier.html"] = sha256_file(html)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n",
                                       encoding="utf-8")
    code, _, err = run(["dossier", "verify", str(out), "--public-key", str(pub)], capsys)
    assert code == 5 and "manifest.sig does not match" in err


def test_the_dossier_shows_the_environment_the_scan_ran_in(
    two_scans: tuple[Path, str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Package versions come from the run (captured when the scan ran), not from the process
    that writes the dossier later, here one where scikit-learn reports another version."""
    from importlib import metadata

    from finmlsec.store import Store

    _, db, _ = two_scans
    scanned = metadata.version("scikit-learn")
    run_info = Store.open(db).run("last")
    stored = run_info.options["environment"]
    assert stored["packages"]["scikit-learn"] == scanned and stored["python"]
    assert run_info.summary["environments"] == [stored]  # the same process ran the units
    real = metadata.version
    monkeypatch.setattr(metadata, "version",
                        lambda name: "0.0-later" if name == "scikit-learn" else real(name))
    out = tmp_path / "later"
    code, _, err = run(["dossier", "last", "--db", db, "-o", str(out)], capsys)
    assert code == 0, err
    env = json.loads((out / "dossier.json").read_text("utf-8"))["environment"]
    assert env["recorded_at_scan"] and env["packages"]["scikit-learn"] == scanned
    assert env["ran_units"] == [stored]
    assert env["dossier_written_with"]["packages"]["scikit-learn"] == "0.0-later"
    html = (out / "dossier.html").read_text("utf-8")
    assert f"<td>scikit-learn</td><td>{scanned}</td><td>0.0-later</td>" in html


def test_a_run_without_a_recorded_environment_says_so() -> None:
    from finmlsec.report.dossier import scan_environment

    env = scan_environment({"run": {"options": {"profile": {}}}, "summary": {}})
    assert env["recorded_at_scan"] is False and env["packages"] == {}
    assert "not recorded" in env["note"] and env["dossier_written_with"]["packages"]


def test_a_resume_in_another_environment_is_recorded(tmp_path: Path) -> None:
    from finmlsec.environment import environment, merge
    from finmlsec.scan import finish
    from finmlsec.store import Store

    here = environment()
    other = {**here, "packages": {**here["packages"], "numpy": "0.0-elsewhere"}}
    assert merge(merge([here], here), other) == [here, other]
    store = Store.open(str(tmp_path / "s.db"))
    rid = store.create_run(spec_path="x.yaml", spec_name="x", profile="quick", seed=0,
                           system_type=None, options={"environment": here}, analysis={},
                           plan={"units": [], "threats": []}, units=[], diagram_svg="",
                           version="0")
    finish(store, rid, ran_in=here)
    finish(store, rid, ran_in=other)  # resumed elsewhere
    finish(store, rid, ran_in=here)
    assert store.run(rid).summary["environments"] == [here, other]


@pytest.mark.browser
def test_dossier_html_is_self_contained_and_renders(
    two_scans: tuple[Path, str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from playwright.sync_api import sync_playwright

    _, db, _ = two_scans
    out = tmp_path / "pack"
    assert run(["dossier", "last", "--db", db, "-o", str(out)], capsys)[0] == 0
    page_text = (out / "dossier.html").read_text("utf-8")
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page_text)
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium",
                                    args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            for width in (1280, 640):
                page = browser.new_page(viewport={"width": width, "height": 900})
                page.on("request", lambda r: requests.append(r.url))
                page.goto((out / "dossier.html").as_uri())
                page.screenshot(path=str(tmp_path / f"dossier-{width}.png"), full_page=True)
                for section in ("#findings", "#changes", "#inputs", "#environment",
                                "#scan-report"):
                    assert page.locator(section).is_visible(), section
                assert page.locator("#findings tbody tr").count() >= 1
                assert page.evaluate("document.documentElement.scrollWidth") <= width
        finally:
            browser.close()
    assert all(u.startswith("file://") for u in requests), requests


def test_the_dossier_compares_every_input_with_what_the_scan_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Each file the spec names (schema and splits included) carries its digest at scan time,
    from the run's bundle; a model replaced after the scan is flagged, the rest unchanged."""
    spec = build_credit_system(tmp_path / "credit")
    db = str(tmp_path / "finmlsec.db")
    from finmlsec.scan import get_profile, make_executor, run_scan, start_scan
    from finmlsec.store import Store

    store = Store.open(db)
    prof = get_profile("quick").model_copy(update={"only": ("extraction.equation",),
                                                   "only_defences": ("confidence.round",)})
    run_scan(store, start_scan(spec, store=store, profile=prof, seed=0),
             executor=make_executor("serial"))
    roles = _inputs(db, tmp_path / "before", capsys)
    assert {"spec", "model"} <= set(roles)
    assert all(f["changed_since_scan"] is False for r, f in roles.items()
               if not r.startswith("data:german")), roles
    model = Path(roles["model"]["path"])
    model.write_bytes(model.read_bytes() + b"\0")  # the file served later is not the one scanned
    roles = _inputs(db, tmp_path / "after", capsys)
    assert roles["model"]["changed_since_scan"] is True
    assert roles["model"]["sha256_at_scan"] != roles["model"]["sha256"]
    assert roles["spec"]["changed_since_scan"] is False
    html = (tmp_path / "after" / "dossier.html").read_text("utf-8")
    assert "<strong>changed</strong>" in html


def _inputs(db: str, out: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, dict]:
    code, _, err = run(["dossier", "last", "--db", db, "-o", str(out)], capsys)
    assert code == 0, err
    return {f["role"]: f for f in json.loads((out / "dossier.json").read_text("utf-8"))["inputs"]}


def test_a_spec_built_on_a_shipped_use_case_hashes_its_yaml(tmp_path: Path) -> None:
    from finmlsec.report.dossier import input_files

    spec = tmp_path / "spec.yaml"
    spec.write_text("usecase: chatbot\nname: Our bot\n", "utf-8")
    roles = {f["role"]: f for f in input_files(str(spec))}
    shipped = Path(roles["usecase:chatbot"]["path"])
    assert shipped.name == "chatbot.yaml" and roles["usecase:chatbot"]["sha256"] == sha256_file(shipped)
