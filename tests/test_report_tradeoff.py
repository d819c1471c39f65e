"""The trade-off chart (utility cost against attack success) keeps every countermeasure readable
when several sit at the same point: one marker per point, its legend entry naming them all."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

from finmlsec.report import plots
from finmlsec.report.scan import threat_figures


def texts(svg: str) -> str:
    """The SVG's text (matplotlib writes a text's lines as separate elements)."""
    return unescape(" ".join(re.findall(r"<text[^>]*>([^<]*)</text>", svg)))


def markers(svg: str) -> int:
    """Scatter markers drawn in the axes (each PathCollection before the legend is one point's
    marker; the legend draws one per entry again)."""
    axes = re.split(r'<g id="[^"]*legend_1">', svg)[0]
    return len(re.findall(r'<g id="[^"]*PathCollection_\d+"', axes))


def test_identical_points_share_a_marker_and_every_defence_is_named() -> None:
    pts = [("none", 0.0, 0.9), ("confidence.round", 0.0, 0.9),
           ("confidence.label_only", 0.0, 0.9),
           ("input_screen.ood + confidence.round", 0.02, 0.3),
           ("robust.bagging", 0.0199999999, 0.30000001)]  # the same point at shown precision
    groups = plots.tradeoff_groups(pts)
    assert [g[0] for g in groups] == [["none", "confidence.round", "confidence.label_only"],
                                      ["input_screen.ood + confidence.round", "robust.bagging"]]
    svg = plots.tradeoff("t", pts, metric="roc_auc")
    shown = " ".join(texts(svg).split())
    for label, _, _ in pts:
        assert label in shown, label
    assert markers(svg) == 2
    assert "1: none = confidence.round = confidence.label_only (same point, 3 configurations)" \
        in shown
    assert "roc auc lost" in shown


def test_distinct_points_keep_one_marker_each() -> None:
    pts = [("none", 0.0, 0.9), ("a", 0.01, 0.5), ("b", 0.011, 0.5)]
    svg = plots.tradeoff("t", pts)
    assert markers(svg) == 3 and "same point" not in texts(svg)


def test_the_report_figure_lists_every_countermeasure_of_a_threat() -> None:
    names = ["confidence.round", "confidence.label_only", "input_screen.ood"]
    threat: dict[str, Any] = {
        "attack": "infer_model", "via": "model_io", "success": 0.8,
        "countermeasures": [{"defences": [n], "success": 0.8, "utility_drop": 0.0}
                            for n in names[:2]]
        + [{"defences": [names[2]], "success": 0.1, "utility_drop": 0.01}],
    }
    doc: dict[str, Any] = {"units": [], "summary": {"utility_metric": "accuracy"},
                           "reproduce": {"scan": "finmlsec scan s.yaml", "report": "r"},
                           "run": {"spec_path": "s.yaml"}}
    fig = next(f for f in threat_figures(doc, 0, threat) if f["id"] == "fig-0-tradeoff")
    shown = " ".join(texts(fig["svg"]).split())
    assert all(n in shown for n in ["none", *names])
    assert markers(fig["svg"]) == 2 and "accuracy lost" in shown
