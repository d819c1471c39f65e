"""The validation dossier: one stored scan as a self-contained, verifiable evidence pack.

:func:`build_dossier` gathers what a model-risk function shows its supervisor: the analysis, the
scan (every threat, countermeasure and unit), the environment the scan ran in (package versions,
recorded with the run at scan time), the seeds, the
sha256 of the spec, the model file and every data file, each finding with its paper type and
threat, MITRE ATLAS technique, OWASP ML Top 10 entry, NIST AI 100-2 class and EU AI Act Art. 15
concern, and the changes since the previous validation of the same system (new, fixed, worse).
:func:`write_dossier` writes ``dossier.json``, ``dossier.html`` and ``manifest.json`` (the sha256
of every file), optionally ``manifest.sig`` (signed with the user's private key);
:func:`verify_dossier` reports every file whose bytes changed, is missing or was added.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from finmlsec.environment import environment as current_environment
from finmlsec.errors import AuditError, ConfigError
from finmlsec.report.words import overview, threat_name, verdict
from finmlsec.spec.files import sha256_file

DOSSIER_VERSION = 1
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"

#: EU AI Act Art. 15 (accuracy, robustness and cybersecurity of high-risk systems) per threat.
EU_AI_ACT = {
    "infer_model": "Art. 15(5): confidentiality attacks (the model itself)",
    "infer_training_data": "Art. 15(5): confidentiality attacks (training data, personal data)",
    "induce_false_prediction": "Art. 15(5): adversarial examples or model evasion; "
                               "Art. 15(1): accuracy and robustness",
    "generate_malicious_model": "Art. 15(5): data poisoning or model poisoning",
    "dos_model_generator": "Art. 15(4): resilience against errors, faults and disruption",
    "dos_model_operator": "Art. 15(4): resilience against errors, faults and disruption",
    "dos_training_data_provider": "Art. 15(4): resilience against errors, faults and disruption",
}
FEEDBACK_LOOP = "Art. 15(4): feedback loops of systems that continue to learn"


def scan_environment(doc: dict[str, Any]) -> dict[str, Any]:
    """The environment the scan ran in, as recorded with the run (not this process's): the one
    captured when it was planned, every distinct one that ran its units (a resume on another
    machine adds one), and, apart, the environment that wrote the dossier."""
    recorded = (doc["run"].get("options") or {}).get("environment")
    ran = (doc.get("summary") or {}).get("environments") or ([recorded] if recorded else [])
    out: dict[str, Any] = dict(recorded) if recorded else {
        "python": None, "platform": None, "packages": {},
        "note": "not recorded: the run predates environment capture; rerun the scan to record it"}
    out["recorded_at_scan"] = recorded is not None
    out["ran_units"] = ran
    out["dossier_written_with"] = current_environment()
    return out


#: Dossier role of each file key of a spec (``finmlsec.spec.files.FILE_KEYS``).
ROLES = {"model.path": "model", "model.factory.path": "model:factory", "data.path": "data:path",
         "data.schema": "data:schema", "data.splits.train": "data:train",
         "data.splits.test": "data:test", "data.splits.population": "data:population"}


def input_files(spec_path: str, at_scan: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The spec, every file it names (model, factory, schema, data, splits), the shipped use case
    it takes its keys from, with their sha256 now (``None`` for a file that is no longer there).

    ``at_scan`` (YAML key -> sha256, from the run's bundle, :func:`finmlsec.scan.bundle.hashes`)
    adds each file's digest when the scan read it and ``changed_since_scan``; without it (inputs
    too large to bundle, or a run from before bundles) both are ``None``: not recorded."""
    spec = Path(spec_path)
    paths: list[tuple[str, str | None, Path]] = [("spec", "spec", spec)]
    if spec.exists():
        import yaml

        raw = yaml.safe_load(spec.read_text("utf-8")) or {}
        from finmlsec.spec.files import FILE_KEYS, lookup

        for key in FILE_KEYS:
            rel = lookup(raw, key)
            if isinstance(rel, str) and not (key == "model.path"
                                              and (raw.get("model") or {}).get("format") == "remote"):
                paths.append((ROLES[key], key, Path(rel) if Path(rel).is_absolute()
                              else spec.parent / rel))
        data = raw.get("data") or {}
        if isinstance(data.get("dataset"), str):  # a registered dataset: its vendored file
            from importlib import resources

            folder = Path(str(resources.files("finmlsec.datasets") / "data"))
            found = sorted(p for p in folder.iterdir() if p.stem == data["dataset"])
            paths += [(f"data:{data['dataset']}", None, p) for p in found]
            if not found:
                paths.append((f"data:{data['dataset']}", None,
                              Path(f"(generated by finmlsec from seed {data.get('seed', 0)})")))
        if isinstance(raw.get("usecase"), str):  # the shipped use case the spec takes its keys from
            from importlib import resources

            shipped = resources.files("finmlsec").joinpath("usecases", "specs",
                                                           f"{raw['usecase']}.yaml")
            paths.append((f"usecase:{raw['usecase']}", None, Path(str(shipped))))
    out = []
    for role, spec_key, p in paths:
        entry: dict[str, Any] = {"role": role, "path": str(p), "sha256": _digest(p)}
        if at_scan is not None and spec_key is not None:
            then = at_scan.get(spec_key)
            entry["sha256_at_scan"] = then
            entry["changed_since_scan"] = None if then is None else then != entry["sha256"]
        out.append(entry)
    return out


def _digest(path: Path) -> str | None:
    """A file's sha256; for a directory (a Parquet data set in parts), the sha256 of the sorted
    list of its files' relative paths and digests; ``None`` for what is no longer there."""
    if path.is_file():
        return sha256_file(path)
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(q for q in path.rglob("*") if q.is_file()):
            h.update(f"{f.relative_to(path).as_posix()}\0{sha256_file(f)}\n".encode())
        return h.hexdigest()
    return None


def _refs(t: dict[str, Any], prefix: tuple[str, ...]) -> list[str]:
    return [r["id"] for r in t.get("references", []) if r["id"].startswith(prefix)]


def findings(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """One finding per threat, with the frameworks a supervisor maps it to."""
    analysis = doc.get("analysis") or {}
    appetite = analysis.get("risk_appetite") or "low"
    out = []
    for t in doc["threats"]:
        name = threat_name(doc, t)
        cat: dict[str, Any] = next(
            (a for a in analysis.get("threats", []) if a.get("id") == name["id"]), {})
        eu = EU_AI_ACT.get(t["attack"], "Art. 15: accuracy, robustness and cybersecurity")
        if t["via"] == "false_prediction_data":
            eu = f"{eu}; {FEEDBACK_LOOP}"
        out.append({
            "threat_id": name["id"], "threat": name["title"], "via": name["via"],
            "paper_type": doc["run"].get("system_type"), "paper_section": cat.get("section"),
            "verdict": verdict(t, appetite), "risk": t["risk"], "success": t["success"],
            "residual_risk": t["residual_risk"], "best": t.get("best"),
            "decision": t["decision"], "recommendation": t["recommendation"],
            "mitre_atlas": _refs(cat, ("AML.T",)), "owasp_ml_top10": _refs(cat, ("ML0", "ML1")),
            "nist_ai_100_2": _refs(cat, ("NIST",)), "eu_ai_act_art15": eu,
        })
    return out


def changes(doc: dict[str, Any], previous: dict[str, Any] | None,
            appetite: str = "low") -> dict[str, Any]:
    """What changed since ``previous`` (the last validation of the same system): findings new
    (measured now, not before), fixed (above the risk appetite before, within it now), worse (a
    higher risk level) and better."""
    if previous is None:
        return {"previous_run": None, "new": [], "fixed": [], "worse": [], "better": []}
    from finmlsec.report.diff import diff_docs
    from finmlsec.report.numbers import LEVELS

    d = diff_docs(previous, doc)
    limit = LEVELS.index(appetite) if appetite in LEVELS else 1

    def above(level: str) -> bool:
        return level in LEVELS and LEVELS.index(level) > limit

    out: dict[str, Any] = {"previous_run": previous["run"]["id"], "new": [], "fixed": [],
                           "worse": [], "better": []}
    for t in d["threats"]:
        row = {"threat": t["threat"], "before": t["risk_a"], "after": t["risk_b"]}
        if t["risk_a"] not in LEVELS and t["risk_b"] in LEVELS:  # measured for the first time
            out["new"].append(row)
        elif above(t["risk_a"]) and t["risk_b"] in LEVELS and not above(t["risk_b"]):
            out["fixed"].append(row)
        elif t["change"] == "worse":
            out["worse"].append(row)
        elif t["change"] == "better":
            out["better"].append(row)
    return out


def build_dossier(doc: dict[str, Any], previous: dict[str, Any] | None = None,
                  at_scan: dict[str, str] | None = None) -> dict[str, Any]:
    """The dossier of the scan document ``doc`` (``previous``: the last validation of the same
    system, or None; ``at_scan``: the digests of the files the scan read, see
    :func:`input_files`)."""
    ov = overview(doc)
    return {
        "dossier_version": DOSSIER_VERSION,
        "system": {"name": ov["title"], "description": ov["description"],
                   "paper_type": doc["run"].get("system_type"), "spec_path": doc["run"]["spec_path"]},
        "run": doc["run"],
        "overview": ov,
        # the scan's headline warnings (``summary.warnings``), shown first as the report does
        "warnings": list((doc.get("summary") or {}).get("warnings") or []),
        "findings": findings(doc),
        "changes": changes(doc, previous, ov["appetite"]),
        "seeds": {"run": doc["run"]["seed"], "units": {u["id"]: u["seed"] for u in doc["units"]}},
        "inputs": input_files(doc["run"]["spec_path"], at_scan),
        "environment": scan_environment(doc),
        "reproduce": doc["reproduce"],
        "analysis": doc["analysis"],
        "scan": {"summary": doc["summary"], "threats": doc["threats"], "units": doc["units"]},
    }


def _load_private_key(path: Path) -> Any:
    try:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key
    except ImportError as exc:  # pragma: no cover - the optional extra
        from finmlsec.extras import missing

        raise missing(exc.name or "cryptography", "signing a dossier") from None
    try:
        return load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"cannot read the private key {str(path)!r}: {exc}; give an "
                          "unencrypted PEM Ed25519 or RSA private key") from None


def _sign(key: Any, data: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

    if isinstance(key, ed25519.Ed25519PrivateKey):
        return bytes(key.sign(data))
    if isinstance(key, rsa.RSAPrivateKey):
        return bytes(key.sign(data, padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                                                salt_length=padding.PSS.MAX_LENGTH),
                              hashes.SHA256()))
    raise ConfigError("the signing key must be an Ed25519 or RSA private key")


def write_dossier(dossier: dict[str, Any], html: str, out: Path,
                  sign_key: Path | None = None) -> list[Path]:
    """Write the dossier into the directory ``out``; return the files written."""
    out.mkdir(parents=True, exist_ok=True)
    files = {"dossier.json": json.dumps(dossier, indent=2, sort_keys=False) + "\n",
             "dossier.html": html}
    written = []
    for name, text in files.items():
        (out / name).write_text(text, encoding="utf-8")
        written.append(out / name)
    manifest = {"dossier_version": DOSSIER_VERSION, "algorithm": "sha256",
                "files": {p.name: sha256_file(p) for p in written}}
    data = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")
    (out / MANIFEST).write_bytes(data)
    written.append(out / MANIFEST)
    if sign_key is not None:
        (out / SIGNATURE).write_bytes(_sign(_load_private_key(sign_key), data))
        written.append(out / SIGNATURE)
    return written


def _verify_signature(public_key: Path, data: bytes, signature: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(public_key.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the public key {str(public_key)!r}: {exc}") from None
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                                                    salt_length=padding.PSS.MAX_LENGTH),
                       hashes.SHA256())
        else:
            raise ConfigError("the public key must be an Ed25519 or RSA key")
    except InvalidSignature:
        return False
    return True


def verify_dossier(directory: Path, public_key: Path | None = None) -> dict[str, Any]:
    """Check every file of the dossier in ``directory`` against its manifest (and the signature
    with ``public_key``); raise :class:`AuditError` naming every problem."""
    mpath = directory / MANIFEST
    if not mpath.is_file():
        raise ConfigError(f"{str(directory)!r} holds no {MANIFEST}; give the directory that "
                          "`finmlsec dossier RUN_ID -o DIR` wrote")
    data = mpath.read_bytes()
    try:
        manifest = json.loads(data)
        expected: dict[str, str] = dict(manifest["files"])
    except (ValueError, KeyError, TypeError):
        raise AuditError(f"{MANIFEST} in {str(directory)!r} is not a dossier manifest "
                         "(it was changed)") from None
    problems = []
    for name, digest in sorted(expected.items()):
        path = directory / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif sha256_file(path) != digest:
            problems.append(f"{name} changed (its sha256 differs from the manifest)")
    extra = sorted(p.name for p in directory.iterdir()
                   if p.is_file() and p.name not in expected and p.name not in (MANIFEST,
                                                                                 SIGNATURE))
    problems += [f"{name} was added" for name in extra]
    signed = (directory / SIGNATURE).is_file()
    signature = "unsigned"
    if signed and public_key is not None:
        ok = _verify_signature(public_key, data, (directory / SIGNATURE).read_bytes())
        signature = "valid" if ok else "invalid"
        if not ok:
            problems.append(f"{SIGNATURE} does not match {MANIFEST} and the public key (the "
                            "manifest was changed or signed with another key)")
    elif signed:
        signature = "present, not checked (give --public-key)"
    elif public_key is not None:
        problems.append(f"no {SIGNATURE}: the dossier was not signed")
    if problems:
        raise AuditError(f"dossier {str(directory)!r}: " + "; ".join(problems))
    return {"files": len(expected), "signature": signature}


def render_dossier_html(dossier: dict[str, Any], report_html: str) -> str:
    """The dossier as one self-contained page, with the scan report (``report_html``) inside."""
    import re

    from markupsafe import Markup

    from finmlsec.report.scan import _env

    style = re.search(r"<style>(.*?)</style>", report_html, flags=re.S)
    body = re.search(r"<body>(.*)</body>", report_html, flags=re.S)
    return _env().get_template("dossier.html.j2").render(
        d=dossier, report_style=Markup(style.group(1) if style else ""),  # noqa: S704
        report_body=Markup(body.group(1) if body else ""),  # noqa: S704
    )
