"""The scan report a risk committee reads: the system's name, a plain-language first page (reach by
organisation, a verdict per threat in words, what to do and which organisation does it), readable
threat names with catalogue ids, numbers written right, notes cleaned, and readable charts (checked
in chromium at two widths, with screenshots)."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from finmlsec.report.numbers import cost, metric, num, success
from finmlsec.report.scan import render_html, render_markdown, threat_notes
from finmlsec.report.words import overview
from scan_support import scan_credit_system

ATTACKS = ("extraction.equation", "membership.metric", "poisoning.feedback_loop",
           "evasion.constrained")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    return scan_credit_system(tmp_path_factory.mktemp("committee"), ATTACKS)


def test_numbers_are_written_for_readers() -> None:
    assert num(-0.0000004) == "0.000" and num(-0.0) == "0.000"
    assert metric("queries", 49.0) == "49" and metric("n_victims", 100.0) == "100"
    assert metric("queries", 1272.0) == "1,272" and metric("auc", 0.5) == "0.500"
    thresholds = {"high": 0.5, "medium": 0.2, "low": 0.05}
    assert success(0.04999999999999999, thresholds) == "< 0.050"  # agrees with "none"
    assert success(0.05, thresholds) == "0.050"
    assert cost(-0.032) == "-0.032 (accuracy rose)" and cost(0.0) == "0.000"


def test_the_title_is_the_systems_name_and_the_first_page_is_plain(
    scanned: tuple[dict[str, Any], str],
) -> None:
    doc, diagram = scanned
    name = doc["analysis"]["system"]
    assert name and name != doc["run"]["spec_name"]
    page = render_html(doc, diagram)
    md = render_markdown(doc)
    assert re.search(rf"<h1>{re.escape(name)}</h1>", page) and md.startswith(f"# {name}\n")
    first = page.split('id="overview"', 1)[1].split('id="threat-model"', 1)[0]
    orgs = {o["name"] or o["id"] for o in doc["analysis"]["organisations"]}
    assert any(o in first for o in orgs)  # who can reach what, by organisation
    assert "model_io.infer_model" in first and "Infer (steal) the model" in first
    assert "could copy the model" in first
    assert "_" not in re.sub(r'<span class="id">[^<]*</span>|<[^>]+>', "", first).replace(
        "risk-", "")  # no snake_case outside the ids
    ov = overview(doc)
    verdicts = {v["id"]: v["verdict"] for v in ov["verdicts"]}
    # passes shown too (a quick scan's passes are lower bounds: 'unconfirmed')
    assert {"pass", "unconfirmed", "fixable"} & set(verdicts.values())
    for a in ov["actions"]:  # every action names who must do it
        assert re.search(r"(training-data provider|model generator|model operator) \(", a["who"])
    assert "unit" not in first.lower().replace("units", "") or "appendix" in first.lower()
    assert "Reproduce: <code>" not in first and "finmlsec scan " not in first


def test_numbers_in_the_rendered_report(scanned: tuple[dict[str, Any], str]) -> None:
    doc, diagram = scanned
    for text in (render_html(doc, diagram), render_markdown(doc)):
        assert "-0.000" not in text
        assert not re.search(r"queries[=:] ?\d+\.\d", text)
        assert "n_victims=100.000" not in text


def test_headline_residual_is_never_none_while_threats_to_mitigate_are_unmeasured(
    scanned: tuple[dict[str, Any], str],
) -> None:
    doc = copy.deepcopy(scanned[0])
    doc["summary"]["max_residual_risk"] = "none"
    for t in doc["threats"]:
        if t["attacked"] and t["success"] is not None:
            t.update(success=0.0, risk="none", residual_risk="none")
    assert overview(doc)["headline_residual"] == "none" or any(
        t["attacked"] and t["success"] is None for t in doc["threats"])
    victim = next(t for t in doc["threats"] if t["attacked"] and t["success"] is not None)
    victim.update(success=None, risk="not_measured", residual_risk="not_measured",
                  analysis_decision="mitigate")
    n = sum(t["attacked"] and t["success"] is None and t["analysis_decision"] == "mitigate"
            for t in doc["threats"])
    assert overview(doc)["headline_residual"].startswith(f"unknown: {n} threat(s) to mitigate")
    assert "after the recommended countermeasures: **unknown" in render_markdown(doc)


def test_skipped_reason_in_markdown_and_notes_cleaned(scanned: tuple[dict[str, Any], str]) -> None:
    doc = copy.deepcopy(scanned[0])
    t = next(t for t in doc["threats"] if t["attacks"])
    t["attacks"][0].update(status="skipped", error="needs probabilities, the model gives labels")
    t["notes"] = ["evasion.image not run: works on ['image'] inputs, this model takes tabular",
                  "evasion.text not run: works on ['text'] inputs, this model takes tabular",
                  "a note", "a note"]
    md = render_markdown(doc)
    assert "skipped (needs probabilities, the model gives labels)" in md
    assert threat_notes(t) == ["a note"]
    assert md.count("note: a note") == 1 and "works on ['image']" not in md
    accepted = {"notes": ["accepted by the analysis, not attacked: x"],
                "recommendation": "accepted by the analysis: x"}
    assert threat_notes(accepted) == []  # said once, in the recommendation


def test_an_attacks_own_notes_stand_beside_the_threats_verdict(
    scanned: tuple[dict[str, Any], str],
) -> None:
    doc = copy.deepcopy(scanned[0])
    i, t = next((i, t) for i, t in enumerate(doc["threats"]) if t["attacks"]
                and t["countermeasures"])
    a, c = t["attacks"][0], t["countermeasures"][0]
    a["notes"] = ["the copy's agreement is within noise (b=2, c=0 records, p=0.25)"]
    c["notes"] = [{"attack": a["name"], "note": "success counted as 0 (a lower bound)"}]
    t["notes"] = []
    page = render_html(doc, scanned[1])
    section = page.split(f'id="threat-{i}"', 1)[1].split("</section>", 1)[0]
    assert f"<li>{a['name']}: the copy&#39;s agreement is within noise (b=2" in section
    assert f"{a['name']} under {' + '.join(c['defences'])}: success counted as 0" in section
    assert section.index("within noise") > section.index(a["name"])  # after its figure
    md = render_markdown(doc)
    block = md.split(f"`{a['name']}`: ", 1)[1].split("\n## ", 1)[0]
    assert "\n  - note: the copy's agreement is within noise (b=2" in block
    assert f"\n  - note (`{a['name']}`): success counted as 0 (a lower bound)" in block
    del a["notes"], c["notes"]  # a report stored before attacks carried their notes
    assert "within noise (b=2" not in render_markdown(doc) + render_html(doc, scanned[1])


def _boxes_overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return not (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
                or a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"])


@pytest.mark.browser
@pytest.mark.parametrize("width", [1280, 640])
def test_charts_are_readable_in_chromium(
    scanned: tuple[dict[str, Any], str], tmp_path: Path, width: int,
) -> None:
    from playwright.sync_api import sync_playwright

    doc, diagram = scanned
    html = tmp_path / "report.html"
    html.write_text(render_html(doc, diagram), encoding="utf-8")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(html.as_uri())
            page.wait_for_load_state("load")
            page.screenshot(path=str(tmp_path / f"report-{width}.png"), full_page=True)
            assert (tmp_path / f"report-{width}.png").stat().st_size > 10_000
            # nothing wider than the window (no sideways scrolling)
            assert page.evaluate("document.documentElement.scrollWidth") <= width
            assert page.locator("#overview #verdicts tbody tr").count() == len(doc["threats"])
            titles = page.locator("figure.plot svg g[id*='text'] text, figure.plot svg text")
            assert titles.count() > 0
            figures = page.locator("figure.plot")
            assert figures.count() >= 4
            for k in range(figures.count()):
                fig = figures.nth(k)
                fig.scroll_into_view_if_needed()
                fig.screenshot(path=str(tmp_path / f"fig-{width}-{k}.png"))
                svg = fig.locator("svg").first
                box = svg.bounding_box()
                assert box
                # every text (titles, labels, legend) inside the drawing: nothing clipped
                for t in svg.locator("text").all():
                    tb = t.bounding_box()
                    if tb and tb["width"] > 0:
                        assert tb["x"] >= box["x"] - 1 and tb["y"] >= box["y"] - 1
                        assert tb["x"] + tb["width"] <= box["x"] + box["width"] + 1
                        assert tb["y"] + tb["height"] <= box["y"] + box["height"] + 1
                # the legend never covers the plotting area
                legend = svg.locator("g[id$='legend_1']")
                axes = svg.locator("g[id$='patch_2']")
                if legend.count() and axes.count():
                    lb, ab = legend.first.bounding_box(), axes.first.bounding_box()
                    assert lb and ab and not _boxes_overlap(lb, ab), fig.get_attribute("id")
            chart_titles = [t.strip() for t in page.locator("figcaption strong").all_inner_texts()]
            assert all(len(t) > 12 for t in chart_titles), chart_titles  # never "loop."
        finally:
            browser.close()


def test_a_lower_bound_within_the_appetite_is_unconfirmed_not_a_pass(
    scanned: tuple[dict[str, Any], str],
) -> None:
    doc = copy.deepcopy(scanned[0])
    t = next(t for t in doc["threats"] if t["attacked"] and t["success"] is not None)
    t.update(success=0.0, risk="none", lower_bound=[])
    i = doc["threats"].index(t)
    assert overview(doc)["verdicts"][i]["verdict"] == "pass"
    t["lower_bound"] = ["stronger attacks not run by this profile: extraction.learning"]
    v = overview(doc)["verdicts"][i]
    assert v["verdict"] == "unconfirmed" and "extraction.learning" in v["words"]
    assert overview(doc)["counts"]["unconfirmed"] >= 1
    assert "unconfirmed (a lower bound within the appetite)" in render_markdown(doc)
