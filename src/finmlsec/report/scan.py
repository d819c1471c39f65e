"""Scan reports: one JSON document (``docs/scan-schema.md``), rendered as HTML or Markdown.

:func:`scan_document` assembles the document from a stored run and its units; :func:`render_html`
writes one self-contained page (inline CSS and SVG, no script, no network): the threat-model
diagram, the decision table, one section per threat with its figures and how to reproduce each,
and every unit; :func:`render_markdown` the summary for pull requests and tickets.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from finmlsec.report import numbers, plots
from finmlsec.report.words import overview, threat_name
from finmlsec.store import RunInfo, UnitInfo

SCHEMA_VERSION = 1


def _iso(t: Any) -> str | None:
    return t.isoformat(timespec="seconds") if t is not None else None


def scan_document(run: RunInfo, units: list[UnitInfo]) -> dict[str, Any]:
    """The JSON report of a stored scan (stable key order; see ``docs/scan-schema.md``)."""
    rows = {u.unit_id: u for u in units}
    summary = run.summary or {}
    unit_docs = []
    for planned in run.plan.get("units", []):
        row = rows.get(planned["id"])
        o = (row.outcome if row else None) or {}
        r = o.get("result") or {}
        unit_docs.append({
            "id": planned["id"], "threat": planned["threat"], "via": planned["via"],
            "attack": planned["attack"], "defences": planned["defences"],
            "countermeasures": planned["countermeasures"], "seed": planned["seed"],
            "budget": planned["budget"], "access": planned["access"],
            "status": row.status if row else "pending", "attempts": row.attempts if row else 0,
            "success": r.get("success"), "metrics": r.get("metrics", {}),
            "queries": r.get("queries"), "params": r.get("params", planned["params"]),
            "curves": r.get("curves", {}), "notes": r.get("notes", []),
            "utility": o.get("utility"), "seconds": row.seconds if row else None,
            "error": o.get("error"), "time_limit": planned.get("timeout"),
            "fits": planned.get("fits", 0.0),
        })
    spec = shlex.quote(run.spec_path)
    return {
        "schema_version": SCHEMA_VERSION,
        "run": {
            "id": run.id, "status": run.status, "created_at": _iso(run.created_at),
            "finished_at": _iso(run.finished_at), "spec_path": run.spec_path,
            "spec_name": run.spec_name, "profile": run.profile, "seed": run.seed,
            "system_type": run.system_type, "finmlsec_version": run.version,
            "options": run.options,
        },
        "summary": {k: v for k, v in summary.items() if k != "threats"},
        "threats": summary.get("threats", []),
        "units": unit_docs,
        "reproduce": {
            "scan": f"finmlsec scan {spec} --profile {run.profile} --seed {run.seed}"
                    + (" --all" if run.options.get("include_accepted") else ""),
            "report": f"finmlsec report {run.id} --format html",
        },
        "analysis": run.analysis,
    }


def _label(u: dict[str, Any]) -> str:
    return u["attack"] + (" + " + " + ".join(u["defences"]) if u["defences"] else " (no defence)")


def _attack_command(doc: dict[str, Any], u: dict[str, Any]) -> str:
    spec = shlex.quote(doc["run"]["spec_path"])
    params = " ".join(
        f"--param {shlex.quote(f'{k}={json.dumps(v)}')}" for k, v in sorted(u["params"].items())
        if isinstance(v, int | float | str | bool)
    )
    return f"finmlsec attack {u['attack']} --spec {spec} --budget {u['budget']} {params}".strip()


def threat_figures(doc: dict[str, Any], index: int, threat: dict[str, Any]) -> list[dict[str, Any]]:
    """The figures of one threat: ROC curves, other curves (fidelity vs queries, ...), success
    before and after each countermeasure, and utility against risk. Each figure carries its
    caption, the units it draws and how to reproduce it."""
    key = f"{threat['attack']}@{threat['via']}"
    mine = [u for u in doc["units"] if f"{u['threat']}@{u['via']}" == key]
    # curves of the first seed only (a profile with repeats runs every unit again as '#2', ...)
    done = [u for u in mine if u["status"] == "done" and "#" not in u["id"]]
    figs: list[dict[str, Any]] = []
    regen = f"{doc['reproduce']['scan']}; then {doc['reproduce']['report']}"

    def add(kind: str, title: str, svg: str, used: list[dict[str, Any]], how: str) -> None:
        figs.append({"id": f"fig-{index}-{kind}", "title": title, "svg": svg, "threat": index,
                     "units": ", ".join(u["id"] for u in used), "reproduce": how})

    with_roc = [u for u in done if "fpr" in u["curves"].get("roc", {})]
    if with_roc:
        svg = plots.roc(f"f{index}roc", [(_label(u), u["curves"]["roc"]) for u in with_roc])
        base = [u for u in with_roc if not u["defences"]]
        how = "; ".join(_attack_command(doc, u) for u in base[:2]) or regen
        add("roc", "ROC curves of the attack, with and without countermeasures", svg, with_roc,
            how)
    names = sorted({n for u in done for n in u["curves"] if n != "roc"})
    for j, name in enumerate(names):
        used = [u for u in done if name in u["curves"] and u["curves"][name]]
        if not used:
            continue
        title = plots.curve_title(name)
        svg = plots.series(f"f{index}c{j}", title, [(_label(u), u["curves"][name]) for u in used])
        base = [u for u in used if not u["defences"]]
        how = "; ".join(_attack_command(doc, u) for u in base[:2]) or regen
        add(f"curve-{j}", title[:1].upper() + title[1:], svg, used, how)
    if threat.get("success") is not None:
        items: list[tuple[str, float | None]] = [("no countermeasure", threat["success"])]
        items += [(" + ".join(c["defences"]), c["success"]) for c in threat["countermeasures"]]
        svg = plots.bars(f"f{index}bars", items)
        add("bars", "Attack success before and after each countermeasure", svg, mine, regen)
        pts = [("none", 0.0, float(threat["success"]))]
        pts += [(" + ".join(c["defences"]), float(c["utility_drop"] or 0.0), float(c["success"]))
                for c in threat["countermeasures"] if c["success"] is not None]
        if len(pts) > 1:
            metric = (doc.get("summary") or {}).get("utility_metric") or "accuracy"
            add("tradeoff", "Utility cost against attack success", plots.tradeoff(
                f"f{index}trade", pts, metric=metric), mine, regen)
    return figs


def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("finmlsec.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    )
    env.filters["num"] = numbers.num
    env.filters["metric"] = lambda v, k: numbers.metric(k, v)
    env.filters["success"] = numbers.success
    env.filters["cost"] = lambda v, m="accuracy": numbers.cost(v, m)
    return env


_OFF_KIND = re.compile(r"works on \[[^\]]*\] inputs, this model takes")


def threat_notes(t: dict[str, Any]) -> list[str]:
    """A threat's notes for readers: each once, without attacks made for another kind of input
    (an image attack on a tabular model) and without repeating the recommendation."""
    seen: list[str] = []
    for n in t.get("notes", []):
        if _OFF_KIND.search(n) or n in seen:
            continue
        if n.startswith("accepted by the analysis") and str(t.get("recommendation", "")).startswith(
                "accepted by the analysis"):
            continue
        seen.append(n)
    return seen


def method(doc: dict[str, Any]) -> str:
    """How the decisions were taken, in words (the reports' method appendix)."""
    s = doc.get("summary", {})
    z = float(s.get("effect_z", 1.96))
    metric = str(s.get("utility_metric") or "accuracy").replace("_", " ")
    seeds = (doc.get("run", {}).get("options", {}).get("profile") or {}).get("repeats", 1)
    return (
        f"Every attack ran with {seeds} seed(s), on the system as deployed and under each "
        "countermeasure; its success is the mean over the seeds. A countermeasure is "
        "recommended only if it lowers the strongest attack's success beyond noise: the fall "
        f"must exceed {z:g} standard errors (a one-sided test at 2.5%), the standard "
        "error adding the binomial sampling error of both success figures (at their pooled "
        "value, over the trials each is a share of: the victims of an evasion, the candidate "
        "records of a membership test, one retraining loop, otherwise the held-out records) "
        "and, with two seeds or more, the seed-to-seed variance of both means. A countermeasure "
        "that changes nothing is reported as having no measurable effect, one whose effect is "
        "within noise as not shown beyond noise; neither is ever recommended, nor is any "
        "effect established with one seed and no known number of trials. Among those that help, the one leaving the lowest "
        f"risk level is chosen, then the cheapest: its cost is the drop of {metric} on the "
        f"held-out data, which must be at most {float(s.get('max_utility_drop', 0.05)):.3f}. "
        "Countermeasures known to mask gradients or scores rather than remove the weakness "
        "are reported but not recommended." + _sample_words(doc))


def _sample_words(doc: dict[str, Any]) -> str:
    """The statement of the data sample the scan used (data read in chunks), if any."""
    sample = doc.get("run", {}).get("options", {}).get("data_sample") or {}
    return f" {sample['statement']}" if sample.get("statement") else ""


def row_id_words(doc: dict[str, Any]) -> str | None:
    """The report's line on the schema's row ids (``run.options.row_ids``): which the scan left
    out of the model's input, which it kept as frozen model inputs and why; None without ids.

    Example:
        >>> row_id_words({"run": {"options": {"row_ids": {"left_out": ["Unnamed: 0"],
        ...     "kept": [{"id": "loan_id", "why": "the schema lists it among the features"}],
        ...     "model_asked": True}}}})[:58]
        "'Unnamed: 0' left out of the model's input; 'loan_id' kept"
    """
    r = (doc.get("run", {}).get("options") or {}).get("row_ids")
    if not r:
        return None

    def names(ids: list[str]) -> str:
        return ", ".join(repr(i) for i in ids)

    parts = []
    if r.get("left_out"):
        parts.append(f"{names(r['left_out'])} left out of the model's input" + (
            "" if r.get("model_asked", True) else
            " (a remote model is not asked whether it reads them)"))
    for k in r.get("kept") or ():
        parts.append(f"{k['id']!r} kept as a model input, frozen (no attack changes it; "
                     f"gateway clients must send it), because {k['why']}")
    return "; ".join(parts) + "." if parts else None


def _context(doc: dict[str, Any]) -> dict[str, Any]:
    return {"doc": doc, "ov": overview(doc), "row_ids": row_id_words(doc),
            "um": doc.get("summary", {}).get("utility_metric") or "accuracy",
            "method": method(doc), "names": [threat_name(doc, t) for t in doc["threats"]],
            "notes": [threat_notes(t) for t in doc["threats"]]}


def render_html(doc: dict[str, Any], diagram_svg: str = "") -> str:
    """One self-contained HTML page for the JSON report ``doc``."""
    from markupsafe import Markup

    figures = [
        [dict(f, svg=Markup(f["svg"])) for f in threat_figures(doc, i, t)]  # noqa: S704
        for i, t in enumerate(doc["threats"])
    ]
    return _env().get_template("scan.html.j2").render(
        figures=figures, diagram=Markup(diagram_svg) if diagram_svg else "",  # noqa: S704
        **_context(doc),
    )


def render_markdown(doc: dict[str, Any]) -> str:
    """The Markdown summary of the JSON report ``doc``."""
    env = _env()
    env.autoescape = False
    return env.get_template("scan.md.j2").render(**_context(doc))


def render_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2)


def write_report(doc: dict[str, Any], fmt: str, path: str | Path, diagram_svg: str = "") -> Path:
    """Write the report of ``doc`` in ``fmt`` (html, md, json) to ``path``."""
    text = {"html": lambda: render_html(doc, diagram_svg), "md": lambda: render_markdown(doc),
            "json": lambda: render_json(doc)}[fmt]()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out
