"""``finmlsec feedback list | approve | reject``: review the false-prediction quarantine."""

from __future__ import annotations

import getpass
import json

import typer

from finmlsec.cli.keys import ANCHOR_OPT, DB_OPT, KEY_FILE_OPT, PREFIX_OPT


def register(app: typer.Typer) -> None:
    fb = typer.Typer(help="Review quarantined false-prediction reports.", no_args_is_help=True)
    app.add_typer(fb, name="feedback")

    @fb.command("list")
    def list_(status: str | None = typer.Option("quarantined", "--status",
                                                help="quarantined, approved or rejected."),
              db: str = DB_OPT, table_prefix: str = PREFIX_OPT,
              fmt: str = typer.Option("text", "--format", help="text or json"),
              audit_key_file: str | None = KEY_FILE_OPT,
              anchor: list[str] | None = ANCHOR_OPT) -> None:
        """List reports (json: with their records, e.g. to export approved training data).
        Approved reports are listed only when the audit log verifies and records their
        submission and approval; others are named on stderr. Every listing is audited (who,
        which status, which reports) before anything is shown."""
        from finmlsec.gateway.audit import anchor_paths, open_writer
        from finmlsec.gateway.auditkey import default_key_path, load_key
        from finmlsec.gateway.feedback import list_feedback
        from finmlsec.store.gateway import GatewayDB

        gdb = GatewayDB(db, table_prefix=table_prefix)
        verified = None
        if status == "approved":
            key = load_key(audit_key_file, default=default_key_path(db))
            verified = (key, anchor_paths(db, anchor))
        dropped: list[str] = []
        items = list_feedback(gdb, status=status, limit=None, verified=verified,
                              dropped=dropped)
        # reports hold applicants' records: who read or exported them is in the log
        open_writer(gdb, key_file=audit_key_file).append_sync({
            "action": "feedback.list", "status": 200, "key_id": None, "org": None,
            "role": "cli", "detail": {"by": f"cli:{getpass.getuser()}", "status": status,
                                      "format": fmt, "reports": [i.id for i in items]}})
        for fid in dropped:
            typer.echo(f"left out {fid}: the audit log does not record it as approved "
                       "(see 'finmlsec audit verify')", err=True)
        if fmt == "json":
            typer.echo(json.dumps([i.as_dict() for i in items]))
            return
        for i in items:
            flags = ",".join(i.flags) or "-"
            typer.echo(f"{i.id}  {i.created[:19]}  org={i.org:<14} label={i.label:<8} "
                       f"model={i.model_label}({i.model_confidence:.2f})  flags={flags}  {i.status}")
        typer.echo(f"{len(items)} report(s)", err=True)

    def _decide(decision: str, fid: str, note: str | None, db: str, table_prefix: str,
                key_file: str | None) -> None:
        from finmlsec.gateway.audit import open_writer
        from finmlsec.gateway.feedback import review
        from finmlsec.store.gateway import GatewayDB

        gdb = GatewayDB(db, table_prefix=table_prefix)
        item = review(gdb, open_writer(gdb, key_file=key_file), fid, decision,
                      reviewer=f"cli:{getpass.getuser()}", note=note)
        typer.echo(f"{item.id} {item.status}")

    @fb.command("approve")
    def approve(fid: str = typer.Argument(..., help="The report id (from `feedback list`)."), note: str | None = typer.Option(None, "--note", help="Why (kept in the audit log)."),
                db: str = DB_OPT, table_prefix: str = PREFIX_OPT,
                audit_key_file: str | None = KEY_FILE_OPT) -> None:
        """Release a report for training data."""
        _decide("approve", fid, note, db, table_prefix, audit_key_file)

    @fb.command("reject")
    def reject(fid: str = typer.Argument(..., help="The report id (from `feedback list`)."), note: str | None = typer.Option(None, "--note", help="Why (kept in the audit log)."),
               db: str = DB_OPT, table_prefix: str = PREFIX_OPT,
               audit_key_file: str | None = KEY_FILE_OPT) -> None:
        """Reject a report; it never reaches training data."""
        _decide("reject", fid, note, db, table_prefix, audit_key_file)
