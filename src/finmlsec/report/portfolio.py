"""The portfolio report (``finmlsec scan INVENTORY.yaml``) as Markdown, HTML and JSON.

One row per system, errors first, then the highest residual risk first: its paper type, the
measured and residual risk, its verdicts, what changed since its previous validation in the
store, and the command that renders its full scan report. The HTML page is self-contained
(inline CSS, no script, nothing fetched).
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

from finmlsec.errors import FinmlsecError
from finmlsec.report.numbers import LEVELS
from finmlsec.store import PortfolioSystem, RunInfo, Store

SCHEMA_VERSION = 1

def previous_run(store: Store, run: RunInfo) -> RunInfo | None:
    """The last finished validation of the same system (same spec name and path) before
    ``run``, or None."""
    return next((r for r in store.runs(500)
                 if r.id != run.id and r.summary is not None and r.created_at <= run.created_at
                 and (r.spec_name, r.spec_path) == (run.spec_name, run.spec_path)), None)


def _rank(level: str | None) -> int:
    return LEVELS.index(level) if level in LEVELS else -1


def _system_doc(store: Store, system: PortfolioSystem) -> dict[str, Any]:
    from finmlsec.report.dossier import changes
    from finmlsec.report.scan import scan_document
    from finmlsec.report.words import overview

    e = system.entry
    out: dict[str, Any] = {
        "id": system.name, "title": system.name, "status": system.status,
        "error": system.error, "spec_path": system.spec_path, "model_uri": e.get("model_uri"),
        "profile": e.get("profile"), "seed": e.get("seed"), "run_id": system.run_id,
        "paper_type": None, "max_risk": "not_measured", "max_residual_risk": "not_measured",
        "headline_residual": "not measured", "verdicts": {}, "fail_threats": [],
        "changes": {"previous_run": None, "new": [], "fixed": [], "worse": [], "better": []},
        "threats": [], "warnings": [],
    }
    if system.run_id is None:
        return out
    try:
        run = store.run(system.run_id)
    except FinmlsecError:
        return out
    out["paper_type"] = run.system_type
    if run.summary is None:
        return out
    doc = scan_document(run, store.units(run.id))
    ov = overview(doc)
    prev = previous_run(store, run)
    prev_doc = scan_document(prev, store.units(prev.id)) if prev is not None else None
    out.update({
        "title": ov["title"], "max_risk": run.summary.get("max_risk", "not_measured"),
        "max_residual_risk": run.summary.get("max_residual_risk", "not_measured"),
        "headline_residual": ov["headline_residual"], "verdicts": ov["counts"],
        "changes": changes(doc, prev_doc, ov["appetite"]),
        "threats": [{"threat": v["id"], "title": v["title"], "verdict": v["verdict"],
                     "risk": v["risk"], "residual_risk": v["residual"]} for v in ov["verdicts"]],
        "warnings": list(run.summary.get("warnings") or []),
    })
    return out


def document(store: Store, portfolio_id: str) -> dict[str, Any]:
    """The portfolio report: every system, errors first, then by highest residual risk, then by
    measured risk (highest first), then by id."""
    pf = store.portfolio(portfolio_id)
    systems = [_system_doc(store, s) for s in pf.systems]
    systems.sort(key=lambda s: (s["status"] != "error", -_rank(s["max_residual_risk"]),
                                -_rank(s["max_risk"]), s["id"]))
    measured = [s["max_risk"] for s in systems if s["max_risk"] in LEVELS]
    residual = [s["max_residual_risk"] for s in systems if s["max_residual_risk"] in LEVELS]
    return {
        "schema_version": SCHEMA_VERSION,
        "portfolio": {
            "id": pf.id, "name": pf.name, "inventory": pf.inventory_path, "status": pf.status,
            "created_at": pf.created_at.isoformat(timespec="seconds"),
            "finished_at": pf.finished_at.isoformat(timespec="seconds")
            if pf.finished_at else None,
        },
        "summary": {
            "systems": len(systems),
            "status": {k: sum(s["status"] == k for s in systems)
                       for k in ("done", "incomplete", "error", "pending", "running",
                                 "interrupted") if any(s["status"] == k for s in systems)},
            "max_risk": max(measured, key=LEVELS.index) if measured else "not_measured",
            "max_residual_risk": max(residual, key=LEVELS.index) if residual else "not_measured",
            "by_residual_risk": {lv: sum(s["max_residual_risk"] == lv for s in systems)
                                 for lv in reversed(LEVELS)},
            "warnings": sum(len(s["warnings"]) for s in systems),
        },
        "systems": systems,
        "reproduce": f"finmlsec scan {pf.inventory_path}",
    }


#: The single-scan report's headline alert (``templates/scan.html.j2``), the same on this page.
WARNING_CSS = (".warning { background: #f8d0d0; border-left: 6px solid #b00020; "
               "padding: .6rem .8rem; font-size: 1rem; }")

RISK_COLOUR = {"high": "#b91c1c", "medium": "#c2410c", "low": "#a16207", "none": "#15803d"}


def _changes(c: dict[str, Any]) -> str:
    if c.get("previous_run") is None:
        return "first validation"
    parts = [f"{len(c[k])} {k}" for k in ("new", "fixed", "worse", "better") if c.get(k)]
    detail = "; ".join(
        f"{k}: " + ", ".join(f"{r['threat']} {r['before']}→{r['after']}" for r in c[k])
        for k in ("worse", "new", "fixed", "better") if c.get(k))
    head = ", ".join(parts) if parts else "no change"
    return f"{head} since {c['previous_run']}" + (f" ({detail})" if detail else "")


def _verdicts(v: dict[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in v.items() if n) or "-"


def _status(s: dict[str, Any]) -> str:
    n = len(s.get("warnings") or ())
    warned = f"; {n} warning{'s' if n > 1 else ''} (above)" if n else ""
    return (f"error: {s['error']}" if s["status"] == "error" else s["status"]) + warned


def system_warnings(doc: dict[str, Any]) -> list[str]:
    """Each system's headline warnings (its scan's ``summary.warnings``), named by the system:
    shown first in every format, as the scan report shows its own."""
    return [f"{x['title']} ({x['id']}): {w[:1].upper()}{w[1:]}"
            for x in doc["systems"] for w in x.get("warnings") or ()]


def render_markdown(doc: dict[str, Any]) -> str:
    p, s = doc["portfolio"], doc["summary"]
    lines = [
        f"# Portfolio {p['name']}: {s['systems']} systems",
        "",
        f"Portfolio `{p['id']}` ({p['status']}), inventory `{p['inventory']}`. Highest measured "
        f"risk {s['max_risk']}, highest residual risk {s['max_residual_risk']}; systems by "
        "residual risk: " + ", ".join(f"{k} {n}" for k, n in s["by_residual_risk"].items()) + ".",
        "",
        *[f"> **WARNING.** {line}.\n" for line in system_warnings(doc)],
        "| system | paper type | residual risk | measured risk | verdicts | changes since last "
        "validation | status | run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for x in doc["systems"]:
        cells = [f"{x['title']} (`{x['id']}`)", str(x["paper_type"] or "-"),
                 str(x["headline_residual"]), x["max_risk"], _verdicts(x["verdicts"]),
                 _changes(x["changes"]), _status(x), f"`{x['run_id'] or '-'}`"]
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ")
                                       for c in cells) + " |")
    lines += ["", "Full report of a system: `finmlsec report RUN --format html`. Re-run "
              f"`{doc['reproduce']}` to resume unfinished systems.", ""]
    return "\n".join(lines)


def _risk(level: str) -> str:
    colour = RISK_COLOUR.get(level, "#475569")
    return f'<span class="risk" style="background:{colour}">{escape(level)}</span>'


def render_html(doc: dict[str, Any]) -> str:
    p, s = doc["portfolio"], doc["summary"]
    rows = []
    for x in doc["systems"]:
        threats = "".join(
            f"<li>{escape(t['title'])} <code>{escape(t['threat'])}</code>: {escape(t['verdict'])}"
            f", risk {escape(str(t['risk']))}, residual {escape(str(t['residual_risk']))}</li>"
            for t in x["threats"])
        rows.append(
            "<tr>"
            f"<td><b>{escape(x['title'])}</b><br><code>{escape(x['id'])}</code>"
            + (f"<br><small>{escape(x['model_uri'])}</small>" if x.get("model_uri") else "")
            + f"</td><td>{escape(str(x['paper_type'] or '-'))}</td>"
            f"<td>{_risk(x['max_residual_risk'])}"
            + (f"<br><small>{escape(str(x['headline_residual']))}</small>"
               if str(x["headline_residual"]) != x["max_residual_risk"] else "")
            + f"</td><td>{_risk(x['max_risk'])}</td>"
            f"<td>{escape(_verdicts(x['verdicts']))}</td>"
            f"<td>{escape(_changes(x['changes']))}</td>"
            f"<td class=\"{'err' if x['status'] == 'error' else ''}\">{escape(_status(x))}</td>"
            f"<td><code>{escape(x['run_id'] or '-')}</code>"
            + (f"<details><summary>threats</summary><ul>{threats}</ul></details>"
               if threats else "") + "</td></tr>")
    by = ", ".join(f"{escape(k)} {n}" for k, n in s["by_residual_risk"].items())
    alerts = "".join(
        f'<p class="warning" role="alert"><strong>Warning.</strong> <b>{escape(x["title"])}</b> '
        f'(<code>{escape(x["id"])}</code>): {escape(w[:1].upper() + w[1:])}.</p>\n'
        for x in doc["systems"] for w in x.get("warnings") or ())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Portfolio {escape(p['name'])}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #0f172a; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border: 1px solid #cbd5e1; padding: .4rem .6rem; vertical-align: top; text-align: left; }}
th {{ background: #f1f5f9; }}
.risk {{ color: white; padding: .1rem .4rem; border-radius: .3rem; white-space: nowrap; }}
.err {{ color: #b91c1c; }}
{WARNING_CSS}
</style></head><body>
<h1>Portfolio {escape(p['name'])}: {s['systems']} systems</h1>
<p>Portfolio <code>{escape(p['id'])}</code> ({escape(p['status'])}), inventory
<code>{escape(p['inventory'])}</code>. Highest measured risk {_risk(s['max_risk'])}, highest
residual risk {_risk(s['max_residual_risk'])}. Systems by residual risk: {by}.</p>
{alerts}<table><thead><tr><th>system</th><th>paper type</th><th>residual risk</th><th>measured risk</th>
<th>verdicts</th><th>changes since last validation</th><th>status</th><th>run</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
<p>Full report of a system: <code>finmlsec report RUN --format html</code>. Re-run
<code>{escape(doc['reproduce'])}</code> to resume unfinished systems.</p>
</body></html>
"""


def render_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False)


RENDER = {"html": render_html, "md": render_markdown, "json": render_json}


def write_portfolio_reports(doc: dict[str, Any], out: Path) -> dict[str, Path]:
    """Write ``portfolio.html``, ``portfolio.md`` and ``portfolio.json`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for fmt, render in RENDER.items():
        path = out / f"portfolio.{fmt}"
        path.write_text(render(doc), encoding="utf-8")
        paths[fmt] = path
    return paths
