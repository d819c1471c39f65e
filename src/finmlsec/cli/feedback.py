"""``finmlsec feedback list | approve | reject``: review the false-prediction quarantine."""

from __future__ import annotations

import getpass
import json

import typer

from finmlsec.cli.keys import DB_OPT, PREFIX_OPT


def register(app: typer.Typer) -> None:
    fb = typer.Typer(help="Review quarantined false-prediction reports.", no_args_is_help=True)
    app.add_typer(fb, name="feedback")

    @fb.command("list")
    def list_(status: str | None = typer.Option("quarantined", "--status",
                                                help="quarantined, approved or rejected."),
              db: str = DB_OPT, table_prefix: str = PREFIX_OPT,
              fmt: str = typer.Option("text", "--format", help="text or json")) -> None:
        """List reports (json: with their records, e.g. to export approved training data)."""
        from finmlsec.gateway.feedback import list_feedback
        from finmlsec.store.gateway import GatewayDB

        items = list_feedback(GatewayDB(db, table_prefix=table_prefix), status=status,
                              limit=None)
        if fmt == "json":
            typer.echo(json.dumps([i.as_dict() for i in items]))
            return
        for i in items:
            flags = ",".join(i.flags) or "-"
            typer.echo(f"{i.id}  {i.created[:19]}  org={i.org:<14} label={i.label:<8} "
                       f"model={i.model_label}({i.model_confidence:.2f})  flags={flags}  {i.status}")
        typer.echo(f"{len(items)} report(s)", err=True)

    def _decide(decision: str, fid: str, note: str | None, db: str, table_prefix: str) -> None:
        from finmlsec.gateway.audit import AuditWriter
        from finmlsec.gateway.feedback import review
        from finmlsec.store.gateway import GatewayDB

        gdb = GatewayDB(db, table_prefix=table_prefix)
        item = review(gdb, AuditWriter(gdb), fid, decision, reviewer=f"cli:{getpass.getuser()}",
                      note=note)
        typer.echo(f"{item.id} {item.status}")

    @fb.command("approve")
    def approve(fid: str = typer.Argument(..., help="The report id (from `feedback list`)."), note: str | None = typer.Option(None, "--note", help="Why (kept in the audit log)."),
                db: str = DB_OPT, table_prefix: str = PREFIX_OPT) -> None:
        """Release a report for training data."""
        _decide("approve", fid, note, db, table_prefix)

    @fb.command("reject")
    def reject(fid: str = typer.Argument(..., help="The report id (from `feedback list`)."), note: str | None = typer.Option(None, "--note", help="Why (kept in the audit log)."),
               db: str = DB_OPT, table_prefix: str = PREFIX_OPT) -> None:
        """Reject a report; it never reaches training data."""
        _decide("reject", fid, note, db, table_prefix)
