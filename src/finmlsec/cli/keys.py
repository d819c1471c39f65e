"""``finmlsec keys create | list | revoke | rotate``: API keys of the gateway (stored hashed)."""

from __future__ import annotations

import json

import typer

DB_OPT = typer.Option("sqlite:///finmlsec-gateway.db", "--db", envvar="FINMLSEC_GATEWAY_DB",
                      help="SQLAlchemy URL of the gateway database.")
PREFIX_OPT = typer.Option("", "--table-prefix", envvar="FINMLSEC_GATEWAY_PREFIX",
                          help="Prefix of the gateway's table names (several gateways in one database).")
KEY_FILE_OPT = typer.Option(
    None, "--audit-key-file", envvar="FINMLSEC_AUDIT_KEY_FILE",
    help="File with the audit log's HMAC key (64 hex digits); default: $FINMLSEC_AUDIT_KEY, "
    "else DB.audit-key beside a SQLite database. Keep it out of the database's reach.")
ANCHOR_OPT = typer.Option(
    None, "--anchor", help="Audit anchor file (repeat for several); default: "
    "$FINMLSEC_AUDIT_ANCHOR, else DB.audit-anchor beside a SQLite database.")


def register(app: typer.Typer) -> None:
    keys = typer.Typer(help="Manage the gateway's API keys.", no_args_is_help=True)
    app.add_typer(keys, name="keys")

    @keys.command("create")
    def create(
        org: str = typer.Option(..., "--org", help="Organisation the key belongs to."),
        role: str = typer.Option("system_user", "--role",
                                 help="system_user, reviewer (feedback quarantine) or admin."),
        name: str = typer.Option("", "--name", help="A label for people."),
        expires_days: float | None = typer.Option(None, "--expires-days",
                                                  help="The key stops working after this."),
        db: str = DB_OPT, table_prefix: str = PREFIX_OPT,
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
        audit_key_file: str | None = KEY_FILE_OPT,
    ) -> None:
        """Create a key; it is printed once and only its hash is stored."""
        from finmlsec.gateway.audit import open_writer
        from finmlsec.gateway.audit_verify import key_state
        from finmlsec.store.gateway import GatewayDB

        gdb = GatewayDB(db, table_prefix=table_prefix)
        writer = open_writer(gdb, key_file=audit_key_file)
        k = gdb.create_key(org=org, role=role, name=name, expires_days=expires_days)
        writer.append_sync({"action": "keys.create", "status": 201, "key_id": None,
                            "org": None, "role": "cli",
                            "detail": {"new_key_id": k.key_id, "new_org": k.org,
                                       "new_role": k.role, "key": key_state(gdb, k.key_id)}})
        if as_json:
            typer.echo(json.dumps({"key_id": k.key_id, "key": k.token, "org": k.org,
                                   "role": k.role}))
        else:
            typer.echo(f"key id: {k.key_id}  org: {k.org}  role: {k.role}")
            typer.echo(f"API key (shown once, store it safely): {k.token}")

    @keys.command("list")
    def list_(db: str = DB_OPT, table_prefix: str = PREFIX_OPT,
              as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """List keys (ids, organisations, roles; never the keys)."""
        from finmlsec.store.gateway import GatewayDB

        ks = GatewayDB(db, table_prefix=table_prefix).list_keys()
        rows = [k.as_dict() for k in ks]
        if as_json:
            typer.echo(json.dumps(rows))
            return
        for r in rows:
            state = f"revoked {r['revoked']}" if r["revoked"] else "active"
            typer.echo(f"{r['key_id']}  {r['org']:<20} {r['role']:<12} {state}  {r['name']}")

    @keys.command("revoke")
    def revoke(key_id: str = typer.Argument(..., help="The key id (from `keys list`)."),
               db: str = DB_OPT, table_prefix: str = PREFIX_OPT,
               audit_key_file: str | None = KEY_FILE_OPT) -> None:
        """Revoke a key (takes effect within the servers' key cache time, 2 s by default)."""
        from finmlsec.errors import ConfigError
        from finmlsec.gateway.audit import open_writer
        from finmlsec.gateway.audit_verify import key_state
        from finmlsec.store.gateway import GatewayDB

        gdb = GatewayDB(db, table_prefix=table_prefix)
        writer = open_writer(gdb, key_file=audit_key_file)
        if not gdb.revoke_key(key_id):
            raise ConfigError(f"no active key {key_id!r}; see 'finmlsec keys list'")
        writer.append_sync({"action": "keys.revoke", "status": 200, "key_id": None,
                            "org": None, "role": "cli",
                            "detail": {"target_key_id": key_id, "key": key_state(gdb, key_id)}})
        typer.echo(f"revoked {key_id}")

    @keys.command("rotate")
    def rotate(key_id: str = typer.Argument(..., help="The key id (from `keys list`)."),
               grace_seconds: float = typer.Option(
                   300.0, "--grace-seconds", min=0, max=604800,
                   help="How long the old token keeps working, so clients can switch without an "
                   "outage (0: it stops at once; at most 7 days)."),
               db: str = DB_OPT, table_prefix: str = PREFIX_OPT,
               as_json: bool = typer.Option(False, "--json", help="Print JSON."),
               audit_key_file: str | None = KEY_FILE_OPT) -> None:
        """Replace a key's token; the new one is printed once, the old one works for the grace
        period."""
        from finmlsec.errors import ConfigError
        from finmlsec.gateway.audit import open_writer
        from finmlsec.gateway.audit_verify import key_state
        from finmlsec.store.gateway import GatewayDB

        gdb = GatewayDB(db, table_prefix=table_prefix)
        writer = open_writer(gdb, key_file=audit_key_file)
        k = gdb.rotate_key(key_id, grace_seconds)
        if k is None:
            raise ConfigError(f"no active key {key_id!r}; see 'finmlsec keys list'")
        writer.append_sync({"action": "keys.rotate", "status": 200, "key_id": None,
                            "org": None, "role": "cli",
                            "detail": {"target_key_id": key_id, "grace_seconds": grace_seconds,
                                       "key": key_state(gdb, key_id)}})
        if as_json:
            typer.echo(json.dumps({"key_id": k.key_id, "key": k.token, "org": k.org,
                                   "role": k.role, "old_key_valid_seconds": grace_seconds}))
        else:
            typer.echo(f"key id: {k.key_id}  org: {k.org}  role: {k.role}; the old key works "
                       f"for {grace_seconds:g} s more")
            typer.echo(f"new API key (shown once, store it safely): {k.token}")
