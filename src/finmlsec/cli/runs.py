"""``finmlsec runs list | show | diff``: the stored scans, one scan, and two scans compared."""

from __future__ import annotations

import json

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


@runs_app.command("diff")
def diff_runs(
    run_a: str = typer.Argument(..., help="The earlier run."),
    run_b: str = typer.Argument(..., help="The later run."),
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Diff two scans, threat by threat: before and after a model change, for example."""
    from finmlsec.report.diff import diff_docs
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
