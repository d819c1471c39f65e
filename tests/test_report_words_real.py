"""The first page's sentences on figures seen in a trial on real credit data: an extraction's
success is the lift over a copy made without querying (not the agreement), and a spec without a
description leaves no stray word."""

from __future__ import annotations

from typing import Any

from finmlsec.report.words import overview


def _doc(metrics: dict[str, float], success: float, description: Any = None) -> dict[str, Any]:
    attack = {"name": "extraction.equation", "success": success, "queries": 24,
              "metrics": metrics}
    threat = {"attack": "infer_model", "via": "model_io", "attacked": True, "success": success,
              "risk": "none", "residual_risk": "none", "best": None,
              "lower_bound": ["stronger attacks not run by this profile: extraction.learning"],
              "attacks": [attack], "countermeasures": [], "analysis_decision": "mitigate",
              "countermeasures_recommended": ["modify_confidence"], "notes": []}
    return {"run": {"spec_name": "s", "system_type": 10, "profile": "quick"},
            "summary": {"max_residual_risk": "none"},
            "analysis": {"system": "Credit", "description": description, "threats": []},
            "threats": [threat]}


def test_an_extraction_with_no_lift_is_not_said_to_agree_on_none_of_the_cases() -> None:
    doc = _doc({"fidelity_test": 0.771, "fidelity_baseline": 0.913, "fidelity_lift": 0.0}, 0.0)
    words = overview(doc)["verdicts"][0]["words"]
    assert "agrees with it on 77% of test cases, against 91% for a copy made without " \
           "querying it" in words
    assert "agrees with it on 0%" not in words


def test_no_description_leaves_no_none_in_the_first_page() -> None:
    doc = _doc({"fidelity_test": 0.9, "fidelity_baseline": 0.8}, 0.5)
    assert overview(doc)["description"] == ""
    assert overview(_doc({}, 0.5, description="A bank."))["description"] == "A bank."


def test_scan_report_is_written_in_the_format_its_file_name_asks_for(tmp_path) -> None:
    """``--report quick.md`` wrote HTML into a .md file."""
    from bank_files import run_cli
    from messy_loans import build_messy_system

    spec = build_messy_system(tmp_path, n=400)["spec"]
    code, out = run_cli(["scan", str(spec), "--profile", "quick", "--attack",
                         "extraction.equation", "--executor", "serial", "--db",
                         f"sqlite:///{tmp_path / 'r.db'}", "--report", str(tmp_path / "r.md"),
                         "--quiet"])
    assert code == 0, out
    md = (tmp_path / "r.md").read_text(encoding="utf-8")
    assert md.startswith("# ") and "<html" not in md
