"""``finmlsec scan --junit FILE --sarif FILE``: one JUnit test case per threat (failed when its
risk reaches --fail-on, skipped with the reason when not measured) and a SARIF 2.1.0 log."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from finmlsec.cli.main import main
from scan_support import build_credit_system


def test_scan_writes_junit_and_sarif(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    spec = build_credit_system(tmp_path / "credit")
    junit, sarif = tmp_path / "ci" / "junit.xml", tmp_path / "ci" / "scan.sarif"
    with pytest.raises(SystemExit) as exc:
        main(["scan", str(spec), "--profile", "quick", "--db", str(tmp_path / "s.db"),
              "--executor", "serial", "-q", "--attack", "extraction.equation",
              "--defence", "confidence.round", "--fail-on", "high", "--junit", str(junit),
              "--sarif", str(sarif)])
    out, err = capsys.readouterr()
    assert exc.value.code == 1, err  # extraction of a logistic regression is exact: high
    assert "FAIL          Infer (steal) the model, via model input and output data "\
        "[model_io.infer_model]" in out  # whole names, never cut to the terminal's width
    suite = ET.parse(junit).getroot()
    cases = suite.findall("testcase")
    threats = json.loads(Path(sarif).read_text("utf-8"))["runs"][0]["tool"]["driver"]["rules"]
    assert int(suite.get("tests", "0")) == len(cases) == len(threats) > 3
    failed = [c for c in cases if c.find("failure") is not None]
    skipped = [c for c in cases if c.find("skipped") is not None]
    assert [c.get("name") for c in failed] == ["Infer (steal) the model (model_io.infer_model)"]
    assert int(suite.get("failures", "0")) == 1 and int(suite.get("skipped", "0")) == len(skipped)
    assert len(skipped) == len(cases) - 1  # only extraction was run: the others skipped
    assert all(c.find("skipped").get("message") for c in skipped)  # type: ignore[union-attr]
    log = json.loads(sarif.read_text("utf-8"))
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-2.1.0.json")
    results = log["runs"][0]["results"]
    assert [(r["ruleId"], r["level"], r["kind"]) for r in results] == [
        ("model_io.infer_model", "error", "fail")]
    rule_ids = {r["id"] for r in log["runs"][0]["tool"]["driver"]["rules"]}
    assert all(r["ruleId"] in rule_ids for r in results)
    uri = results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri == spec.resolve().as_uri()
    infer = next(r for r in log["runs"][0]["tool"]["driver"]["rules"]
                 if r["id"] == "model_io.infer_model")
    assert "ML05" in infer["properties"]["tags"]


def test_junit_without_fail_on_fails_only_high_risks() -> None:
    from finmlsec.report.ci import junit_xml

    doc = {"run": {"spec_name": "s"}, "analysis": {}, "threats": [
        {"attack": a, "via": "model_io", "attacked": True, "success": s, "risk": r,
         "residual_risk": r, "recommendation": "x", "attacks": []}
        for a, s, r in (("infer_model", 0.3, "medium"), ("induce_false_prediction", 0.9, "high"))]}
    root = ET.fromstring(junit_xml(doc).split("\n", 1)[1])
    assert [c.find("failure") is not None for c in root.findall("testcase")] == [False, True]
    root = ET.fromstring(junit_xml(doc, "medium").split("\n", 1)[1])
    assert [c.find("failure") is not None for c in root.findall("testcase")] == [True, True]
