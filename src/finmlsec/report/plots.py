"""The scan report's figures, drawn with matplotlib as inline SVG strings (no files, no network).

Every function takes plain data (lists and dicts from the JSON report) and returns the ``<svg>``
element as a string, so the HTML report embeds it directly.

Example:
    >>> from finmlsec.report.plots import bars
    >>> svg = bars("success", [("none", 0.9), ("round", 0.4)], ylabel="success")
    >>> svg.startswith("<svg") and "round" in svg
    True
"""

from __future__ import annotations

import io
import re
import textwrap
from collections.abc import Sequence
from typing import Any

_STYLE: Any = {
    "svg.hashsalt": "finmlsec",
    "svg.fonttype": "none",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def _figure(width: float = 5.0, height: float = 3.2) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    with matplotlib.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(width, height))
    return fig, ax


def _svg(fig: Any, uid: str) -> str:
    import matplotlib
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    with matplotlib.rc_context(_STYLE):
        fig.savefig(buf, format="svg", bbox_inches="tight", pad_inches=0.08,
                    metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    # ids must be unique across the several SVGs of one HTML page
    text = re.sub(r'id="([^"]+)"', lambda m: f'id="{uid}-{m.group(1)}"', text)
    text = re.sub(r'url\(#([^)]+)\)', lambda m: f"url(#{uid}-{m.group(1)})", text)
    text = re.sub(r'xlink:href="#([^"]+)"', lambda m: f'xlink:href="#{uid}-{m.group(1)}"', text)
    return text


#: Readable titles of the attacks' named curves (a name missing here is shown with spaces).
CURVE_TITLES = {
    "fidelity_vs_queries": "agreement of the stolen copy against queries",
    "leaves_vs_queries": "decision-tree leaves found against queries",
    "features_changed": "fields changed per successful evasion",
    "loop": "poisoning through the feedback loop, round by round",
    "load": "response time under load",
}


def curve_title(name: str) -> str:
    """The readable title of an attack's curve ``name``."""
    return CURVE_TITLES.get(name, name.replace("_", " "))


def _legend_below(ax: Any, n: int) -> None:
    """The legend under the axes, never over the lines."""
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2),
              ncol=1 if n > 4 else 2, frameon=False)


def roc(uid: str, curves: Sequence[tuple[str, dict[str, list[float]]]]) -> str:
    """ROC curves on log-log axes (low false-positive rates matter), with the chance line."""
    fig, ax = _figure()
    for label, c in curves:
        fpr = [max(v, 1e-4) for v in c.get("fpr", [])]
        tpr = [max(v, 1e-4) for v in c.get("tpr", [])]
        ax.plot(fpr, tpr, label=label, linewidth=1.2)
    ax.plot([1e-4, 1], [1e-4, 1], linestyle="--", color="grey", linewidth=0.8, label="chance")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_title("ROC of the attack")
    _legend_below(ax, len(curves) + 1)
    return _svg(fig, uid)


_X_NAMES = ("queries", "n_queries", "budget", "round", "rounds", "step", "rate", "x", "fraction")


def series(uid: str, name: str, curves: Sequence[tuple[str, dict[str, list[float]]]]) -> str:
    """A named curve of several runs (e.g. fidelity against queries): x is the first of
    ``queries, budget, round, step, rate, x, fraction`` present, every other key is a line."""
    fig, ax = _figure()
    xlabel = ""
    if all(len(c) == 1 for _, c in curves):  # one key: a distribution of values
        key = next(iter(curves[0][1]))
        ax.hist([next(iter(c.values())) for _, c in curves], label=[lab for lab, _ in curves],
                bins=10)
        ax.set_xlabel(key.replace("_", " "))
        ax.set_ylabel("records")
        ax.set_title(name.replace("_", " "))
        _legend_below(ax, len(curves))
        return _svg(fig, uid)
    for label, c in curves:
        keys = list(c)
        xkey = next((k for k in _X_NAMES if k in c), keys[0] if keys else "")
        xlabel = xkey
        for k in keys:
            if k == xkey or len(c[k]) != len(c.get(xkey, [])):
                continue
            ax.plot(c[xkey], c[k], marker="o", markersize=2.5, linewidth=1.2,
                    label=f"{label}: {k}" if len(keys) > 2 else label)
    ax.set_xlabel(xlabel.replace("_", " "))
    ax.set_title(name.replace("_", " "))
    handles = ax.get_legend_handles_labels()[0]
    if handles:
        _legend_below(ax, len(handles))
    return _svg(fig, uid)


def bars(uid: str, items: Sequence[tuple[str, float | None]], *, ylabel: str = "attack success",
         title: str = "success before / after countermeasures") -> str:
    """One bar per configuration (first: none); unmeasured configurations are shown as n/a."""
    fig, ax = _figure(5.0, 0.6 + 0.35 * max(3, len(items)))
    labels = [lab for lab, _ in items]
    values = [v if v is not None else 0.0 for _, v in items]
    colors = ["#b22222" if i == 0 else "#2f6f9f" for i in range(len(items))]
    ax.barh(range(len(items)), values, color=colors)
    for i, (_, v) in enumerate(items):
        ax.text(values[i] + 0.01, i, "n/a" if v is None else f"{v:.3f}", va="center", fontsize=7)
    ax.set_yticks(range(len(items)))
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.1)
    ax.set_xlabel(ylabel)
    ax.set_title(title)
    return _svg(fig, uid)


def tradeoff_groups(points: Sequence[tuple[str, float, float]],
                    decimals: int = 3) -> list[tuple[list[str], float, float]]:
    """``points`` grouped by position (cost and success equal to ``decimals`` places, the
    precision the report shows): configurations at the same point share one marker and one
    legend entry listing them all, in their order."""
    groups: dict[tuple[float, float], list[str]] = {}
    where: dict[tuple[float, float], tuple[float, float]] = {}
    for label, cost, success in points:
        key = (round(cost, decimals), round(success, decimals))
        groups.setdefault(key, []).append(label)
        where.setdefault(key, (cost, success))
    return [(labels, *where[key]) for key, labels in groups.items()]


def tradeoff(uid: str, points: Sequence[tuple[str, float, float]], *,
             metric: str = "accuracy") -> str:
    """Utility cost (``metric`` lost) against the attack's success, one numbered marker per
    distinct point. Configurations at the same point (same cost and success) share the marker
    and its legend entry (``2: a = b``), so none hides another; points close together keep their
    number beside them, offset in turn, so each stays identifiable."""
    fig, ax = _figure(5.0, 3.4)
    markers = "os^DvP*Xh<>"
    groups = tradeoff_groups(points)
    offsets = ((6, 4), (6, -11))  # the number right of its marker, above and below in turn
    for i, (labels, cost, success) in enumerate(groups):
        label = f"{i + 1}: " + " = ".join(labels)
        if len(labels) > 1:
            label += f" (same point, {len(labels)} configurations)"
        label = "\n    ".join(textwrap.wrap(label, 70, break_on_hyphens=False))
        ax.scatter([cost], [success], s=30 + 12 * (len(labels) - 1),
                   marker=markers[i % len(markers)], zorder=3,
                   color="#b22222" if i == 0 else f"C{i % 10}", label=label)
        ax.annotate(str(i + 1), (cost, success), textcoords="offset points",
                    xytext=offsets[i % len(offsets)], fontsize=7)
    _legend_below(ax, 5)  # one column: entries that list several configurations are long
    costs = [c for _, c, _ in groups]
    span = max(max(costs) - min(costs), 0.02)
    ax.set_xlim(min(costs) - 0.15 * span, max(costs) + 0.3 * span)
    ax.axhline(0.5, color="grey", linestyle=":", linewidth=0.8)
    ax.set_xlabel(f"utility cost ({metric.replace('_', ' ')} lost on held-out data)")
    ax.set_ylabel("attack success")
    ax.set_ylim(-0.08, 1.08)
    ax.set_title("utility against risk")
    return _svg(fig, uid)
