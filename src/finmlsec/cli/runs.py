"""``finmlsec runs list | show | diff``: the stored scans, one scan, and two scans compared.

``runs list`` shows the runs, then the portfolios (``finmlsec scan INVENTORY.yaml``), each newest
first; ``--json`` gives one list, each row with its ``kind`` (``run`` or ``portfolio``)."""

from __future__ import annotations

import json
from typing import Any

import typer

runs_app = typer.Typer(help="Stored scans: list, show, diff.", no_args_is_help=True)

DB_HELP = "Store URL or SQLite path [FINMLSEC_DB or ./finmlsec.db]."


@runs_app.command("list")
def list_runs(
    db: str | None = typer.Option(None, "--db", help=DB_HELP),
    limit: int = typer.Option(20, "--limit", min=1,
                              help="At most this many runs, and this many portfolios."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """The newest scans first, then the newest portfolios."""
    from finmlsec.store import Store

    store = Store.open(db)
    rows: list[dict[str, Any]] = []
    runs: dict[str, dict[str, Any]] = {}  # the summaries of the portfolios' runs
    for r in store.runs(limit):
        s = r.summary or {}
        runs[r.id] = s
        rows.append({
            "kind": "run", "id": r.id, "created_at": r.created_at.isoformat(timespec="seconds"),
            "status": r.status, "spec": r.spec_name, "type": r.system_type,
            "profile": r.profile, "max_risk": s.get("max_risk"),
            "max_residual_risk": s.get("max_residual_risk"),
        })
    portfolios = [_portfolio_row(store, pf, runs) for pf in store.portfolios(limit)]
    if json_out:
        typer.echo(json.dumps(rows + portfolios, indent=2))
        return
    if not rows and not portfolios:
        typer.echo("no runs yet; run `finmlsec scan SPEC`")
    for row in rows:
        typer.echo(f"{row['id']}  {row['created_at']}  {row['status']:<11} {row['spec']:<20} "
                   f"type {row['type']}  {row['profile']:<8} risk {row['max_risk']} -> "
                   f"{row['max_residual_risk']}")
    if portfolios:
        typer.echo("portfolios:")
    for p in portfolios:
        typer.echo(f"{p['id']}  {p['created_at']}  {p['status']:<11} {p['name']:<20} "
                   f"{p['systems']} systems ({_counts(p['system_status'])})  "
                   f"risk {p['max_risk']} -> {p['max_residual_risk']}")


def _portfolio_row(store: Any, pf: Any, runs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A portfolio as ``runs list`` shows it: its systems' statuses and their highest measured
    and residual risk (None while no system's run finished)."""
    from finmlsec.errors import FinmlsecError
    from finmlsec.report.numbers import LEVELS

    measured: list[str] = []
    residual: list[str] = []
    for system in pf.systems:
        if system.run_id is None or system.status == "error":
            continue  # an error is never a measured risk
        if system.run_id not in runs:
            try:
                runs[system.run_id] = store.run(system.run_id).summary or {}
            except FinmlsecError:
                runs[system.run_id] = {}
        s = runs[system.run_id]
        measured += [s["max_risk"]] if s.get("max_risk") in LEVELS else []
        residual += [s["max_residual_risk"]] if s.get("max_residual_risk") in LEVELS else []
    status: dict[str, int] = {}
    for system in pf.systems:
        status[system.status] = status.get(system.status, 0) + 1
    return {
        "kind": "portfolio", "id": pf.id, "created_at": pf.created_at.isoformat(timespec="seconds"),
        "status": pf.status, "name": pf.name, "inventory": pf.inventory_path,
        "systems": len(pf.systems), "system_status": status, "owner": pf.owner,
        "max_risk": max(measured, key=LEVELS.index) if measured else None,
        "max_residual_risk": max(residual, key=LEVELS.index) if residual else None,
    }


def _counts(status: dict[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in status.items())


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
