"""End-to-end: the ``finmlsec analyze`` / ``types`` commands through the real entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "finmlsec.cli.main", *args], capture_output=True, text=True, cwd=cwd
    )


def test_demo_command_writes_self_contained_html(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    res = run("analyze", str(EXAMPLES / "credit_scoring.yaml"), "--format", "html", "-o", str(out))
    assert res.returncode == 0, res.stderr
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert "<svg" in html and "Type 3" in html
    # self-contained: no external resource of any kind
    for needle in ("<script", "<link", "src=", "@import", "url(http"):
        assert needle not in html


def test_json_to_stdout_has_the_documented_keys() -> None:
    res = run("analyze", str(EXAMPLES / "credit_scoring.yaml"), "--format", "json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["type"] == 3
    assert data["reach"] == ["model_io", "false_prediction_data"]
    for threat in data["threats"]:
        assert {"attack", "via", "priority", "countermeasures", "decision", "reason",
                "inherent_risk", "residual_risk"} <= set(threat)


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("organisations: [{id: a}\n", "malformed YAML"),
        ("organisations: [{id: a}]\nroles: {training_data_provider: a, system_user: a, "
         "model_generator: a, model_operator: b}\n", "roles.model_operator"),
        ("organisations: [{id: a}, {id: b}]\nroles: {training_data_provider: a, system_user: a, "
         "model_generator: a, model_operator: b}\n", "not realistically deployable"),
    ],
)
def test_bad_spec_is_one_line_exit_2(tmp_path: Path, text: str, fragment: str) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(text)
    res = run("analyze", str(spec))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "bad.yaml" in lines[0]


def test_types_json_lists_twelve_types_and_three_exclusions() -> None:
    res = run("types", "--format", "json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert [t["type"] for t in data["types"]] == list(range(1, 13))
    assert len(data["excluded"]) == 3
    assert data["types"][2]["pattern"] == {
        "training_data_provider": "A", "system_user": "B", "model_generator": "A",
        "model_operator": "C",
    }


def test_types_text() -> None:
    res = run("types")
    assert res.returncode == 0
    assert "  10  A   B   A   A      2  model_io, false_prediction_data" in res.stdout
