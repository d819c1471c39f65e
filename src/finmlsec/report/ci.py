"""A scan for continuous integration: JUnit XML (one test case per threat) and SARIF 2.1.0.

A threat's test case fails when its measured risk as deployed reaches the gate (``--fail-on``;
``high`` when none is given); a threat accepted by the analysis or not measured is a skipped test
case, with the reason. SARIF gives one rule per threat of the catalogue and one result per measured
threat (level ``error`` for a high risk, ``warning`` medium, ``note`` low, ``none`` otherwise), each
located at the spec file.

Example:
    >>> doc = {"run": {"id": "r1", "spec_name": "s", "spec_path": "/x/spec.yaml",
    ...        "finmlsec_version": "0"}, "analysis": {}, "threats": [{"attack": "infer_model",
    ...        "via": "model_io", "attacked": True, "success": 0.9, "risk": "high",
    ...        "residual_risk": "high", "recommendation": "escalate", "attacks": []}],
    ...        "summary": {}}
    >>> "<failure" in junit_xml(doc, "high")
    True
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from finmlsec.report.numbers import LEVELS, num
from finmlsec.report.words import threat_name

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_SARIF_LEVEL = {"high": "error", "medium": "warning", "low": "note", "none": "none"}


def _reaches(risk: str, gate: str) -> bool:
    return risk in LEVELS and LEVELS.index(risk) >= LEVELS.index(gate)


def junit_xml(doc: dict[str, Any], fail_on: str | None = None) -> str:
    """JUnit XML of ``doc``: a test suite of one test case per threat."""
    gate = fail_on or "high"
    name = (doc.get("analysis") or {}).get("system") or doc["run"]["spec_name"]
    suite = ET.Element("testsuite", name=f"finmlsec scan of {name}")
    warnings = (doc.get("summary") or {}).get("warnings") or []
    if warnings:  # the scan's headline warnings, first, as its report shows them
        props = ET.SubElement(suite, "properties")
        for w in warnings:
            ET.SubElement(props, "property", name="finmlsec.warning", value=w)
    failures = skipped = 0
    for t in doc["threats"]:
        n = threat_name(doc, t)
        case = ET.SubElement(suite, "testcase", classname=f"finmlsec.{t['via']}",
                             name=f"{n['title']} ({n['id']})")
        case.set("time", f"{sum(float(a.get('seconds') or 0) for a in t.get('attacks', [])):.3f}")
        if not t.get("attacked", True) or t.get("success") is None:
            skipped += 1
            why = t.get("analysis_reason") if not t.get("attacked", True) else "not measured"
            ET.SubElement(case, "skipped", message=f"{t['recommendation']}"[:500] or str(why))
        elif _reaches(t["risk"], gate):
            failures += 1
            fail = ET.SubElement(case, "failure", type=f"risk-{t['risk']}",
                                 message=f"risk {t['risk']} (success {num(t['success'])}) "
                                         f"reaches {gate}")
            fail.text = t["recommendation"]
        ET.SubElement(case, "system-out").text = (
            f"risk as deployed {t['risk']}, residual {t['residual_risk']}: {t['recommendation']}")
    if warnings:
        ET.SubElement(suite, "system-out").text = "\n".join(f"WARNING: {w}" for w in warnings)
    suite.set("tests", str(len(doc["threats"])))
    suite.set("failures", str(failures))
    suite.set("skipped", str(skipped))
    suite.set("errors", "0")
    ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


def sarif(doc: dict[str, Any]) -> dict[str, Any]:
    """SARIF 2.1.0 log of ``doc``."""
    analysis = doc.get("analysis") or {}
    rules, results = [], []
    uri = Path(doc["run"]["spec_path"]).as_uri() if doc["run"]["spec_path"].startswith("/") \
        else doc["run"]["spec_path"]
    for t in doc["threats"]:
        n = threat_name(doc, t)
        cat: dict[str, Any] = next(
            (a for a in analysis.get("threats", []) if a.get("id") == n["id"]), {})
        tags = [r["id"] for r in cat.get("references", [])]
        rules.append({"id": n["id"], "name": n["title"],
                      "shortDescription": {"text": f"{n['title']}, via {n['via'].lower()}"},
                      "properties": {"tags": tags, "paper_section": cat.get("section")}})
        if not t.get("attacked", True) or t.get("success") is None:
            continue
        results.append({
            "ruleId": n["id"], "level": _SARIF_LEVEL.get(t["risk"], "none"),
            "kind": "fail" if t["risk"] in ("medium", "high") else "pass",
            "message": {"text": f"{n['title']}: measured risk {t['risk']} (success "
                                f"{num(t['success'])}), residual {t['residual_risk']}; "
                                f"{t['recommendation']}"},
            "locations": [{"physicalLocation": {"artifactLocation": {"uri": uri}}}],
            "properties": {"success": t["success"], "risk": t["risk"],
                           "residual_risk": t["residual_risk"], "best": t.get("best")},
        })
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [{
        "tool": {"driver": {"name": "finmlsec", "version": doc["run"]["finmlsec_version"],
                            "informationUri": "https://pypi.org/project/finmlsec/",
                            "rules": rules}},
        "automationDetails": {"id": f"finmlsec/{doc['run']['id']}"},
        # the scan's headline warnings (summary.warnings), as notifications of the run
        "invocations": [{"executionSuccessful": True, "toolExecutionNotifications": [
            {"level": "warning", "message": {"text": w}}
            for w in (doc.get("summary") or {}).get("warnings") or []]}],
        "results": results,
    }]}


def write_ci(doc: dict[str, Any], junit: Path | None, sarif_path: Path | None,
             fail_on: str | None) -> None:
    """Write the JUnit and/or SARIF files asked for."""
    for path, text in ((junit, lambda: junit_xml(doc, fail_on)),
                       (sarif_path, lambda: json.dumps(sarif(doc), indent=2) + "\n")):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text(), encoding="utf-8")
