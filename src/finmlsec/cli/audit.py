"""``finmlsec audit verify | show``: check the gateway's hash-chained audit log."""

from __future__ import annotations

import json

import typer

from finmlsec.cli.keys import DB_OPT, PREFIX_OPT


def register(app: typer.Typer) -> None:
    audit = typer.Typer(help="Inspect and verify the gateway's audit log.", no_args_is_help=True)
    app.add_typer(audit, name="audit")

    @audit.command("verify")
    def verify(db: str = DB_OPT, table_prefix: str = PREFIX_OPT,
               as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """Recompute the hash chain; exit 2 naming the first edited, deleted or reordered entry."""
        from finmlsec.gateway.audit import verify_chain
        from finmlsec.store.gateway import GatewayDB

        res = verify_chain(GatewayDB(db, table_prefix=table_prefix))
        if as_json:
            typer.echo(json.dumps(res.__dict__))
            if not res.ok:
                raise typer.Exit(2)
            return
        res.raise_for_problem()
        typer.echo(f"audit chain ok: {res.entries} entries; head {res.head_hash}")

    @audit.command("show")
    def show(after: int = typer.Option(0, "--after", help="Show entries after this sequence number."), limit: int = typer.Option(20, "--limit", help="At most this many entries."),
             db: str = DB_OPT, table_prefix: str = PREFIX_OPT) -> None:
        """Print entries (JSON lines) with sequence numbers above --after."""
        from finmlsec.gateway.audit import read_entries
        from finmlsec.store.gateway import GatewayDB

        for e in read_entries(GatewayDB(db, table_prefix=table_prefix), after=after, limit=limit):
            typer.echo(json.dumps(e, sort_keys=True))
