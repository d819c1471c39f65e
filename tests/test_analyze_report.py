"""Reports of an analysis: JSON (golden file, stable keys), HTML with the SVG diagram, Markdown."""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from finmlsec.errors import ConfigError
from finmlsec.report.analysis import render_analysis
from finmlsec.report.diagram import render_diagram
from finmlsec.spec import load_spec, parse_spec
from finmlsec.threatmodel import analyze

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
TOP_KEYS = [
    "schema_version", "system", "description", "type", "partition", "nearest_types", "departures",
    "organisations", "roles", "reach", "reach_details", "threats", "countermeasures",
    "deployed_countermeasures", "risk_appetite", "currency",
]
THREAT_KEYS = [
    "id", "attack", "title", "via", "priority", "inherent_risk", "decision", "reason",
    "countermeasures", "deployed", "residual_risk", "status", "estimated_loss", "measures",
    "references", "section",
]


@pytest.mark.parametrize("name", ["credit_scoring", "chatbot"])
def test_json_matches_golden_file(name: str) -> None:
    text = render_analysis(analyze(load_spec(ROOT / "examples" / f"{name}.yaml")), "json")
    golden = GOLDEN / f"analysis_{name}.json"
    if os.environ.get("FINMLSEC_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


def test_json_key_order_is_the_documented_one() -> None:
    data = json.loads(analyze(load_spec(ROOT / "examples" / "office_mlaas.yaml")).to_json())
    assert list(data) == TOP_KEYS
    assert all(list(t) == THREAT_KEYS for t in data["threats"])
    assert data["type"] == 7 and data["nearest_types"] == []
    for t in data["threats"]:
        assert t["decision"] in {"accept", "mitigate"} and t["priority"] in {"primary", "secondary"}


def test_documented_schema_lists_every_key() -> None:
    doc = (ROOT / "docs" / "analysis-schema.md").read_text()
    for key in TOP_KEYS + THREAT_KEYS:
        assert f"`{key}`" in doc, key


def _svg(html: str) -> ET.Element:
    match = re.search(r"<svg.*?</svg>", html, re.S)
    assert match is not None
    return ET.fromstring(match.group(0))


def test_html_embeds_the_diagram_with_organisations_entities_flows_and_reach() -> None:
    html = render_analysis(analyze(load_spec(ROOT / "examples" / "credit_scoring.yaml")), "html")
    svg = _svg(html)
    ns = {"s": "http://www.w3.org/2000/svg"}
    orgs = {g.get("data-org"): g for g in svg.iterfind(".//s:g[@class='org']", ns)}
    assert set(orgs) == {"bank", "it_provider", "customer"}
    entities = [g.get("data-role") for g in svg.iterfind(".//s:g", ns) if "entity" in (g.get("class") or "")]
    assert sorted(entities) == sorted(["training_data_provider", "training_data_provider",
                                       "model_generator", "model_operator", "system_user"])
    flows = [g.get("data-flow") for g in svg.iterfind(".//s:g", ns) if "flow" in (g.get("class") or "")]
    assert set(flows) == set("ABCDEFG")
    # A from each of the two providers, G to each of them
    assert flows.count("A") == 2 and flows.count("G") == 2
    reachable = [g for g in svg.iterfind(".//s:g", ns) if "reachable" in (g.get("class") or "")]
    assert {g.get("data-role") or g.get("data-flow") for g in reachable} == {"system_user", "D", "F", "G"}
    # offline: nothing fetched
    assert not re.search(r"(src|href)=\"?https?:", html)
    assert "<script" not in html


def test_nothing_reachable_marks_nothing() -> None:
    a = analyze(parse_spec("""
organisations: [{id: bank}]
roles: {training_data_provider: bank, system_user: bank, model_generator: bank, model_operator: bank}
"""))
    svg = render_diagram(a)
    assert "reachable" not in svg.replace("attacker can reach (nothing)", "")
    assert a.type == 12 and "Nothing" in render_analysis(a, "html")


def test_html_escapes_names() -> None:
    a = analyze(parse_spec("""
organisations: [{id: bank, name: "<img src=x onerror=alert(1)>"}, {id: vendor}]
roles: {training_data_provider: bank, system_user: bank, model_generator: vendor, model_operator: vendor}
"""))
    html = render_analysis(a, "html")
    assert "<img" not in html and "&lt;img" in html
    _svg(html)  # still well-formed XML


def test_markdown_for_tickets() -> None:
    md = render_analysis(analyze(load_spec(ROOT / "examples" / "chatbot.yaml")), "md")
    assert "**Type 4**" in md
    assert "| Data reached | Attack | Priority |" in md
    assert "**accept**: training data is public" in md


def test_unknown_format_is_a_config_error() -> None:
    a = analyze(load_spec(ROOT / "examples" / "chatbot.yaml"))
    with pytest.raises(ConfigError, match="Got 'pdf' instead"):
        render_analysis(a, "pdf")


def test_html_matches_golden_file() -> None:
    text = render_analysis(analyze(load_spec(ROOT / "examples" / "credit_scoring.yaml")), "html")
    golden = GOLDEN / "analysis_credit_scoring.html"
    if os.environ.get("FINMLSEC_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


@pytest.mark.browser
def test_html_opens_offline_in_a_browser(chromium_browser: Any, tmp_path: Path) -> None:
    page_file = tmp_path / "analysis.html"
    page_file.write_text(render_analysis(analyze(load_spec(ROOT / "examples" / "chatbot.yaml")), "html"))
    requested: list[str] = []
    context = chromium_browser.new_context(offline=True)
    page = context.new_page()
    page.on("request", lambda r: requested.append(r.url))
    page.goto(page_file.as_uri())
    assert page.locator("#system-type").inner_text() == "Type 4"
    svg = page.locator("svg").first
    box = svg.bounding_box()
    assert box is not None and box["width"] > 500 and box["height"] > 150
    assert page.locator("svg g.org").count() == 3
    assert page.locator("svg g.flow").count() == 7
    assert page.locator("svg g.entity.reachable").count() == 1  # the customer's system user
    assert page.locator("#threats tr").count() == 1 + 6
    assert requested == [page_file.as_uri()]
