"""``finmlsec audit verify | show``: check the gateway's audit log (keyed chain, anchors, and the
key and feedback tables it vouches for)."""

from __future__ import annotations

import json

import typer

from finmlsec.cli._errors import EXIT_TAMPERED
from finmlsec.cli.keys import ANCHOR_OPT, DB_OPT, KEY_FILE_OPT, PREFIX_OPT


def register(app: typer.Typer) -> None:
    audit = typer.Typer(help="Inspect and verify the gateway's audit log.", no_args_is_help=True)
    app.add_typer(audit, name="audit")

    @audit.command("verify")
    def verify(db: str = DB_OPT, table_prefix: str = PREFIX_OPT,
               audit_key_file: str | None = KEY_FILE_OPT,
               anchor: list[str] | None = ANCHOR_OPT,
               as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """Recompute the chain under the audit key, check it against the anchor files and the
        key and feedback tables; on tampering exit 5 naming the first problem."""
        from finmlsec.gateway.audit import anchor_paths
        from finmlsec.gateway.audit_verify import verify_log
        from finmlsec.gateway.auditkey import default_key_path, load_key
        from finmlsec.store.gateway import GatewayDB

        key = load_key(audit_key_file, default=default_key_path(db))
        anchors = anchor_paths(db, anchor)
        res = verify_log(GatewayDB(db, table_prefix=table_prefix), key, anchors)
        if as_json:
            typer.echo(json.dumps(res.__dict__))
            if not res.ok:
                raise typer.Exit(EXIT_TAMPERED)
            return
        for extra in res.problems[1:]:
            typer.echo(f"also: {extra}", err=True)
        res.raise_for_problem()
        if key is None:
            typer.echo("warning: no audit key: the chain is plain SHA-256, which whoever can "
                       "write the database can recompute (see --audit-key-file)", err=True)
        if not anchors:
            typer.echo("warning: no anchor file: deleting the newest entries cannot be detected "
                       "(see --anchor)", err=True)
        typer.echo(f"audit chain ok: {res.entries} entries"
                   f"{' (HMAC-SHA256)' if key is not None else ''}, {res.anchors} anchor(s); "
                   f"head {res.head_hash}")

    @audit.command("show")
    def show(after: int = typer.Option(0, "--after", help="Show entries after this sequence number."), limit: int = typer.Option(20, "--limit", help="At most this many entries."),
             db: str = DB_OPT, table_prefix: str = PREFIX_OPT) -> None:
        """Print entries (JSON lines) with sequence numbers above --after."""
        from finmlsec.gateway.audit import read_entries
        from finmlsec.store.gateway import GatewayDB

        for e in read_entries(GatewayDB(db, table_prefix=table_prefix), after=after, limit=limit):
            typer.echo(json.dumps(e, sort_keys=True))
