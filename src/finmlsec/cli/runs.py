"""``finmlsec runs list | show | diff``: the stored scans, one scan, and two scans compared."""

from __future__ import annotations

import json
from typing import Any

import typer

runs_app = typer.Typer(help="Stored scans: list, show, diff.", no_args_is_help=True)

DB_HELP = "Store URL or SQLite path [FINMLSEC_DB or ./finmlsec.db]."


@runs_app.command("list")
def list_runs(
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    limit: int = typer.Option(20, "--limit", min=1, help="At most this many runs."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The newest scans first."""
    from finmlsec.store import Store

    rows = []
    for r in Store.open(db).runs(limit):
        s = r.summary or {}
        rows.append({
            "id": r.id, "created_at": r.created_at.isoformat(timespec="seconds"),
            "status": r.status, "spec": r.spec_name, "type": r.system_type,
            "profile": r.profile, "max_risk": s.get("max_risk"),
            "max_residual_risk": s.get("max_residual_risk"),
        })
    if json_out:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("no runs yet; run `finmlsec scan SPEC`")
    for row in rows:
        typer.echo(f"{row['id']}  {row['created_at']}  {row['status']:<11} {row['spec']:<20} "
                   f"type {row['type']}  {row['profile']:<8} risk {row['max_risk']} -> "
                   f"{row['max_residual_risk']}")


@runs_app.command("show")
def show_run(
    run_id: str = typer.Argument(..., help="Run id (a unique prefix, or 'last')."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """One scan: its decisions and the status of every unit."""
    from finmlsec.report.scan import render_json, render_markdown, scan_document
    from finmlsec.store import Store

    store = Store.open(db)
    run = store.run(run_id)
    doc = scan_document(run, store.units(run.id))
    if json_out:
        typer.echo(render_json(doc))
        return
    typer.echo(render_markdown(doc))
    typer.echo("Units:")
    for u in doc["units"]:
        succ = "-" if u["success"] is None else f"{u['success']:.3f}"
        typer.echo(f"  {u['status']:<8} {succ:>6}  {u['id']}")


def diff_docs(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Threat by threat and unit by unit: what changed from scan ``a`` to scan ``b``."""
    order = ("none", "low", "medium", "high")

    def by_key(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
        return {f"{t['attack']}@{t['via']}": t for t in doc["threats"]}

    ta, tb = by_key(a), by_key(b)
    threats = []
    for key in list(ta) + [k for k in tb if k not in ta]:
        x, y = ta.get(key), tb.get(key)
        sa = x.get("success") if x else None
        sb = y.get("success") if y else None
        ra = x["risk"] if x else "absent"
        rb = y["risk"] if y else "absent"
        change = "same"
        if ra in order and rb in order and ra != rb:
            change = "worse" if order.index(rb) > order.index(ra) else "better"
        elif ra != rb:
            change = "changed"
        threats.append({
            "threat": key, "risk_a": ra, "risk_b": rb, "success_a": sa, "success_b": sb,
            "delta": (sb - sa) if sa is not None and sb is not None else None, "change": change,
            "residual_a": x["residual_risk"] if x else None,
            "residual_b": y["residual_risk"] if y else None,
        })
    ua = {u["id"]: u for u in a["units"]}
    units = []
    for u in b["units"]:
        v = ua.get(u["id"])
        if v and v["success"] is not None and u["success"] is not None:
            units.append({"unit": u["id"], "success_a": v["success"], "success_b": u["success"],
                          "delta": u["success"] - v["success"]})
    return {"a": a["run"]["id"], "b": b["run"]["id"], "threats": threats, "units": units,
            "worse": sum(t["change"] == "worse" for t in threats),
            "better": sum(t["change"] == "better" for t in threats)}


@runs_app.command("diff")
def diff_runs(
    run_a: str = typer.Argument(..., help="The earlier run."),
    run_b: str = typer.Argument(..., help="The later run."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Diff two scans, threat by threat: before and after a model change, for example."""
    from finmlsec.report.scan import scan_document
    from finmlsec.store import Store

    store = Store.open(db)
    ra, rb = store.run(run_a), store.run(run_b)
    d = diff_docs(scan_document(ra, store.units(ra.id)), scan_document(rb, store.units(rb.id)))
    d["same_system"] = (ra.spec_name, ra.spec_path) == (rb.spec_name, rb.spec_path)
    if not d["same_system"]:
        typer.echo(f"warning: {ra.id} scanned {ra.spec_name} ({ra.spec_path}) and {rb.id} scanned "
                   f"{rb.spec_name} ({rb.spec_path}): two different systems, so the differences "
                   "below are not a change of one system", err=True)
    if json_out:
        typer.echo(json.dumps(d, indent=2))
        return
    typer.echo(f"{d['a']} -> {d['b']}: {d['worse']} threat(s) worse, {d['better']} better")
    for t in d["threats"]:
        delta = "" if t["delta"] is None else f" ({t['delta']:+.3f})"
        typer.echo(f"  {t['change']:<7} {t['threat']}: {t['risk_a']} -> {t['risk_b']}{delta}")


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs")
