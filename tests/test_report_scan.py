"""Scan reports of a real scan: JSON against its documented schema, Markdown, self-contained HTML,
and the HTML opened in Debian's chromium (Playwright) with every section and plot rendered."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from finmlsec.report.scan import render_html, render_markdown
from scan_support import scan_credit_system

ATTACKS = ("extraction.equation", "evasion.constrained", "membership.rmia")
SCHEMA_DOC = Path(__file__).resolve().parents[1] / "docs" / "scan-schema.md"


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    return scan_credit_system(tmp_path_factory.mktemp("report"), ATTACKS)


def _documented(section: str) -> set[str]:
    text = SCHEMA_DOC.read_text("utf-8")
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    keys: set[str] = set()
    for line in body.splitlines():
        if line.startswith("| `"):
            keys.update(re.findall(r"`([a-z_]+)`", line.split("|")[1]))
    return keys


def test_json_keys_are_exactly_the_documented_ones(scanned: tuple[dict[str, Any], str]) -> None:
    doc, _ = scanned
    assert set(doc) == _documented("Top level")
    assert set(doc["run"]) == _documented("`run`")
    assert set(doc["summary"]) == _documented("`summary`")
    for t in doc["threats"]:
        assert set(t) == _documented("`threats[]`"), t["attack"]
    for u in doc["units"]:
        assert set(u) == _documented("`units[]`"), u["id"]


def test_markdown_has_the_decision_table_and_every_threat(
    scanned: tuple[dict[str, Any], str],
) -> None:
    doc, _ = scanned
    md = render_markdown(doc)
    # two tables: the verdicts in words and the decisions, each a header + one row per threat
    assert md.count("\n| ") == 2 * (len(doc["threats"]) + 1)
    for t in doc["threats"]:
        assert f"(`{t['via']}.{t['attack']}`)\n" in md  # a section per threat, id beside its name
    assert doc["reproduce"]["scan"] in md


def test_html_is_self_contained_with_a_section_and_figures_per_threat(
    scanned: tuple[dict[str, Any], str],
) -> None:
    doc, diagram = scanned
    assert diagram.startswith("<svg")
    page = render_html(doc, diagram)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing fetched
    assert "<script" not in page and "<link" not in page
    assert page.count('class="threat"') == len(doc["threats"])
    attacked = [t for t in doc["threats"] if t["success"] is not None]
    assert attacked
    ids = set(re.findall(r'<figure class="plot" id="([^"]+)"', page))
    for i, t in enumerate(doc["threats"]):
        if t["success"] is not None:
            assert f"fig-{i}-bars" in ids
    roc = [i for i, t in enumerate(doc["threats"]) if t["attack"] == "infer_training_data"
           and t["via"] == "model_io"]
    assert roc and f"fig-{roc[0]}-roc" in ids
    assert page.count("Reproduce: <code>") == len(ids)  # in the appendix, one per figure
    assert all(f'id="a-{i}"' in page for i in ids)
    svg_ids = re.findall(r'<(?:clipPath|path|g)[^>]* id="([^"]+)"', page)
    assert len(svg_ids) == len(set(svg_ids))  # unique across the inline SVGs


@pytest.mark.browser
def test_report_renders_in_chromium_without_errors(
    chromium_browser: Any, scanned: tuple[dict[str, Any], str], tmp_path: Path,
) -> None:
    doc, diagram = scanned
    html = tmp_path / "report.html"
    html.write_text(render_html(doc, diagram), encoding="utf-8")
    problems: list[str] = []
    requests: list[str] = []
    page = chromium_browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("console", lambda m: problems.append(m.text) if m.type in (
        "error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(html.as_uri())
    page.wait_for_load_state("load")
    for section in ("#summary", "#threat-model", "#decisions", "#reproduce", "#units"):
        assert page.locator(section).is_visible(), section
    sections = page.locator("section.threat")
    assert sections.count() == len(doc["threats"])
    rows = page.locator("#decisions tbody tr")
    assert rows.count() == len(doc["threats"])
    diagram_box = page.locator("#threat-model svg").first.bounding_box()
    assert diagram_box and diagram_box["width"] > 200 and diagram_box["height"] > 100
    figures = page.locator("figure.plot")
    assert figures.count() >= 3
    for k in range(figures.count()):
        fig = figures.nth(k)
        fig.scroll_into_view_if_needed()
        box = fig.locator("svg").bounding_box()
        assert box and box["width"] > 150 and box["height"] > 80, fig.get_attribute("id")
        # the plot drew something: axes paths exist inside the SVG
        assert fig.locator("svg path").count() > 3
    assert problems == []
    assert all(u.startswith("file://") for u in requests), requests
