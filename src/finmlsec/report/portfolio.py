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
    return f"error: {s['error']}" if s["status"] == "error" else s["status"]


def render_markdown(doc: dict[str, Any]) -> str:
    p, s = doc["portfolio"], doc["summary"]
    lines = [
        f"# Portfolio {p['name']}: {s['systems']} systems",
        "",
        f"Portfolio `{p['id']}` ({p['status']}), inventory `{p['inventory']}`. Highest measured "
        f"risk {s['max_risk']}, highest residual risk {s['max_residual_risk']}; systems by "
        "residual risk: " + ", ".join(f"{k} {n}" for k, n in s["by_residual_risk"].items()) + ".",
        "",
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
</style></head><body>
<h1>Portfolio {escape(p['name'])}: {s['systems']} systems</h1>
<p>Portfolio <code>{escape(p['id'])}</code> ({escape(p['status'])}), inventory
<code>{escape(p['inventory'])}</code>. Highest measured risk {_risk(s['max_risk'])}, highest
residual risk {_risk(s['max_residual_risk'])}. Systems by residual risk: {by}.</p>
<table><thead><tr><th>system</th><th>paper type</th><th>residual risk</th><th>measured risk</th>
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
