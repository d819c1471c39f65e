"""``finmlsec demo run`` on a built system and ``finmlsec evidence`` from the scans it stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finmlsec.cli.main import build_app
from finmlsec.defences.base import COUNTERMEASURES
from finmlsec.scan.evidence import CLAIMS
from scan_support import build_credit_system


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:  # type: ignore[type-arg]
    out = tmp_path_factory.mktemp("demo")
    build_credit_system(out / "credit-scoring")
    res = CliRunner().invoke(build_app(), [
        "demo", "run", "credit-scoring", "--out", str(out), "--profile", "quick", "--skip-build",
        "--executor", "serial", "--json", "--quiet", "--attack", "extraction.equation",
        "--db", str(out / "finmlsec.db"),
    ])
    assert res.exit_code == 0, res.output
    return out, json.loads(res.stdout)


def test_demo_run_writes_analysis_and_scan_reports(demo_out: tuple[Path, dict]) -> None:  # type: ignore[type-arg]
    out, result = demo_out
    assert result["type"] == 7 and result["status"] == "done"
    for fmt in ("html", "md", "json"):
        path = Path(result["reports"][fmt])
        assert path.parent == out and path.stat().st_size > 500
    assert "<svg" in Path(result["reports"]["html"]).read_text("utf-8")
    assert Path(result["analysis_report"]).read_text("utf-8").startswith("<!DOCTYPE html>")
    doc = json.loads(Path(result["reports"]["json"]).read_text("utf-8"))
    assert doc["run"]["id"] == result["run_id"] and (out / "finmlsec.db").exists()


def test_evidence_states_claim_and_measurement_per_countermeasure(
    demo_out: tuple[Path, dict], tmp_path: Path,  # type: ignore[type-arg]
) -> None:
    out, result = demo_out
    target = tmp_path / "evidence.md"
    res = CliRunner().invoke(build_app(), ["evidence", "--db", str(out / "finmlsec.db"),
                                           "-o", str(target)])
    assert res.exit_code == 0, res.output
    text = target.read_text("utf-8")
    assert set(CLAIMS) == set(COUNTERMEASURES)
    for cm in COUNTERMEASURES:
        assert f"(`{cm}`)" in text
    section = text.split("(`modify_confidence`)", 1)[1].split("\n## ", 1)[0]
    doc = json.loads(Path(result["reports"]["json"]).read_text("utf-8"))
    infer_model = next(t for t in doc["threats"] if t["attack"] == "infer_model")
    rounded = next(c for c in infer_model["countermeasures"]
                   if c["defences"] == ["confidence.round"])
    row = (f"| {doc['run']['spec_name']} | infer_model via model_io | confidence.round | "
           f"{infer_model['success']:.3f} | {rounded['success']:.3f} |")
    assert row in section
    assert result["run_id"] in text
