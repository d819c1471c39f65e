"""``finmlsec serve SPEC``: run the guarded model service (uvicorn, FastAPI)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from finmlsec.errors import ConfigError

DB_HELP = "SQLAlchemy URL of the gateway database (keys, audit, feedback)."


def register(app: typer.Typer) -> None:
    @app.command("serve")
    def serve(
        spec: str | None = typer.Argument(
            None, metavar="[SPEC]", help="System spec (YAML) naming the model and its data, or "
            "'demo' for the built-in credit-scoring model; with --from-scan, the scan's spec."),
        policy: Path | None = typer.Option(None, "--policy", help="Guard policy (YAML)."),
        from_scan: str | None = typer.Option(
            None, "--from-scan", metavar="RUN_DIR_OR_ID",
            help="Serve the system a stored scan tested, with the guards and output defence it "
            "recommended: a run id (or 'last') in --scan-db, a scan JSON file or a directory "
            "holding dossier.json or *scan.json. Refused, naming it, when it recommended "
            "something that cannot be served online."),
        accept_model_change: bool = typer.Option(
            False, "--accept-model-change",
            help="With --from-scan: serve the spec's model even when its file is not the one "
            "the scan measured (SHA-256), with that scan's guards (warned)."),
        scan_db: str | None = typer.Option(
            None, "--scan-db", help="Result store of --from-scan's run id "
            "[FINMLSEC_DB or ./finmlsec.db]."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
        port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port to listen on."),
        workers: int = typer.Option(1, "--workers", min=1, max=64,
                                     help="Server processes (more than 1 needs --redis)."),
        db: str = typer.Option("sqlite:///finmlsec-gateway.db", "--db",
                               envvar="FINMLSEC_GATEWAY_DB", help=DB_HELP),
        redis: str | None = typer.Option(None, "--redis", envvar="FINMLSEC_GATEWAY_REDIS",
                                         help="Redis URL for limits shared across processes."),
        table_prefix: str = typer.Option("", "--table-prefix", envvar="FINMLSEC_GATEWAY_PREFIX",
                                         help="Prefix of the gateway's table names (several "
                                         "gateways in one database)."),
        redis_prefix: str = typer.Option("finmlsec:", "--redis-prefix",
                                         help="Prefix of the gateway's Redis keys."),
        trust_pickle: bool = typer.Option(False, "--trust-pickle",
                                          help="Allow pickle/joblib model files (runs their code)."),
        log_level: str = typer.Option("warning", "--log-level",
                                      help="debug, info, warning or error."),
        metrics_listen: str | None = typer.Option(
            None, "--metrics-listen", help="host:port to serve /metrics on, apart from the API "
            "(one worker)."),
        api_docs: bool = typer.Option(False, "--api-docs",
                                      help="Serve /docs and /redoc (their scripts come from a "
                                      "CDN)."),
        ssl_certfile: str | None = typer.Option(None, "--ssl-certfile",
                                                help="Serve HTTPS with this certificate."),
        ssl_keyfile: str | None = typer.Option(None, "--ssl-keyfile",
                                               help="The certificate's private key."),
        behind_tls_proxy: bool = typer.Option(
            False, "--behind-tls-proxy", help="TLS is terminated by a proxy in front (no warning "
            "for listening beyond loopback without --ssl-certfile)."),
        audit_key_file: str | None = typer.Option(
            None, "--audit-key-file", envvar="FINMLSEC_AUDIT_KEY_FILE",
            help="HMAC key of the audit log (64 hex digits), kept out of the database's reach; "
            "default: $FINMLSEC_AUDIT_KEY, else DB.audit-key beside a SQLite database (created)."),
        key_rotation_grace: float = typer.Option(
            300.0, "--key-rotation-grace", min=0, max=604800, metavar="SECONDS",
            envvar="FINMLSEC_KEY_ROTATION_GRACE",
            help="After an admin rotates a key (POST /v1/admin/keys/ID/rotate without "
            "grace_seconds), the old token keeps working this long (0: it stops at once)."),
        audit_anchor: str | None = typer.Option(
            None, "--audit-anchor", envvar="FINMLSEC_AUDIT_ANCHOR",
            help="Append-only file the audit head is anchored to every second; default: "
            "DB.audit-anchor beside a SQLite database."),
    ) -> None:
        """Serve the model behind authentication, guards and a tamper-evident audit log."""
        import uvicorn

        from finmlsec.gateway.asgi import ENV, serve_config
        from finmlsec.gateway.policy import load_policy
        from finmlsec.gateway.settings import Settings

        doc = None
        if from_scan is not None:
            from finmlsec.gateway.fromscan import load_scan_document

            if policy is not None:
                raise ConfigError("give --policy or --from-scan, not both: --from-scan derives "
                                  "the policy from the scan's recommendations")
            doc = load_scan_document(from_scan, scan_db)
            scanned = doc["run"]["spec_path"]
            if spec is not None and Path(spec).resolve() != Path(scanned).resolve():
                raise ConfigError(f"the scan {doc['run'].get('id')} tested {scanned!r}, not "
                                  f"{spec!r}; leave SPEC out to serve what it tested")
            spec = scanned
        elif accept_model_change:
            raise ConfigError("--accept-model-change goes with --from-scan")
        if spec is None:
            raise ConfigError("give the system's spec (or 'demo'), or --from-scan RUN")
        if spec != "demo" and not Path(spec).is_file():
            raise ConfigError(f"spec file {spec!r} not found; give a YAML spec or 'demo'")
        if workers > 1 and redis is None:
            raise ConfigError(
                f"--workers {workers} needs --redis URL: rate limits and budgets must be shared "
                "by the worker processes to hold"
            )
        if metrics_listen and workers > 1:
            raise ConfigError("--metrics-listen serves one process's metrics; use it with "
                              "--workers 1")
        from finmlsec.gateway.defaults import guard_warnings, spec_policy

        model_warnings: list[str] = []
        if doc is not None:  # the spec's secure defaults, then what the scan recommended
            from finmlsec.gateway.fromscan import check_model, scan_policy

            model_warnings = check_model(doc, spec, accept_change=accept_model_change)
            base, base_on = spec_policy(spec)
            pol, scan_on = scan_policy(doc, base)
            replaced = {line.split(":", 1)[0] for line in scan_on}
            on = scan_on + [line for line in base_on if line.split(":", 1)[0] not in replaced]
            source = (f"from scan {doc['run'].get('id')} of {spec} (its recommendations"
                      f"{'' if scan_on else ': none that acts at serving time'}; the rest "
                      "derived from the spec's analysis)")
        elif policy is None:  # secure by default: the guards the spec's analysis calls for
            pol, on = spec_policy(spec)
            source = "derived from the spec's analysis (no --policy)"
        else:
            pol, on = load_policy(policy), []
            source = f"from {policy}"
        typer.echo(f"guards {source}:", err=True)
        for line in on:
            typer.echo(f"  on: {line}", err=True)
        for line in model_warnings + guard_warnings(pol, host=host,
                                                    tls=bool(ssl_certfile) or behind_tls_proxy):
            typer.echo(f"warning: {line}", err=True)
        settings = Settings(db_url=db, redis_url=redis, table_prefix=table_prefix,
                            redis_prefix=redis_prefix, policy=pol,
                            metrics_listen=metrics_listen, api_docs=api_docs,
                            audit_key_file=audit_key_file, audit_anchor=audit_anchor,
                            key_rotation_grace_seconds=key_rotation_grace)
        os.environ[ENV] = serve_config(
            spec if spec == "demo" else str(Path(spec).resolve()),
            settings.model_dump(mode="json"), trust_pickle=trust_pickle,
        )
        from finmlsec.gateway.asgi import app_from_env

        app_obj = app_from_env()  # built here first, so configuration errors surface at once
        gw = app_obj.state.gateway
        for line in gw.startup_warnings():
            typer.echo(f"warning: {line}", err=True)
        prada_line = gw.guards.prada_summary()
        if prada_line is not None:
            typer.echo(f"  {prada_line} (in the audit log's gateway.start entry and "
                       "GET /v1/admin/status)", err=True)
        typer.echo(f"  keys: a rotated key's old token works {key_rotation_grace:g} s more "
                   "(--key-rotation-grace)", err=True)
        scheme = "https" if ssl_certfile else "http"
        docs = "/docs" if api_docs else "/openapi.json"
        where = f", metrics on http://{metrics_listen}/metrics" if metrics_listen else ""
        typer.echo(f"finmlsec gateway on {scheme}://{host}:{port} (API description at {docs}"
                   f"{where}), workers={workers}", err=True)
        if workers == 1:
            uvicorn.run(app_obj, host=host, port=port, log_level=log_level, access_log=False,
                        ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile)
            return
        gw.close()
        uvicorn.run("finmlsec.gateway.asgi:app_from_env", factory=True, host=host, port=port,
                    workers=workers, log_level=log_level, access_log=False,
                    ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile)
