"""``finmlsec dossier RUN_ID -o DIR`` and ``finmlsec dossier verify DIR``: the validation dossier
of a stored scan (self-contained HTML + JSON with a sha256 manifest, optionally signed)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from finmlsec.store import Store


def dossier_command(
    target: str = typer.Argument(
        ..., metavar="RUN_ID|verify",
        help="The run to document (an id, a unique prefix or 'last'), or 'verify' to check DIR."),
    directory: Path | None = typer.Argument(
        None, metavar="[DIR]", help="With 'verify': the dossier directory to check."),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Directory to write [out/dossier-RUN_ID]."),
    db: str | None = typer.Option(
        None, "--db", help="Store URL or SQLite path [FINMLSEC_DB or ./finmlsec.db]."),
    sign_key: Path | None = typer.Option(
        None, "--sign-key", help="PEM private key (Ed25519 or RSA) to sign the manifest with."),
    public_key: Path | None = typer.Option(
        None, "--public-key", help="With 'verify': PEM public key to check the signature with."),
) -> None:
    """Write the validation dossier of a scan, or verify one (a changed byte in any file is
    reported, exit 5)."""
    from finmlsec.errors import ConfigError
    from finmlsec.report.dossier import verify_dossier

    if target == "verify":
        if directory is None:
            raise ConfigError("give the dossier directory: finmlsec dossier verify DIR")
        res = verify_dossier(directory, public_key)
        typer.echo(f"dossier {directory} verifies: {res['files']} files unchanged; signature "
                   f"{res['signature']}")
        return
    if directory is not None:
        raise ConfigError(f"unexpected argument {str(directory)!r}; write with "
                          "`finmlsec dossier RUN_ID -o DIR`")
    _write(target, output, db, sign_key)


def _write(run_id: str, output: Path | None, db: str | None, sign_key: Path | None) -> None:
    from finmlsec.report.dossier import build_dossier, render_dossier_html, write_dossier
    from finmlsec.report.scan import render_html, scan_document
    from finmlsec.store import Store

    store = Store.open(db)
    run = store.run(run_id)
    doc = scan_document(run, store.units(run.id))
    previous = next((r for r in store.runs(500)
                     if r.id != run.id and r.summary is not None and r.created_at <= run.created_at
                     and (r.spec_name, r.spec_path) == (run.spec_name, run.spec_path)), None)
    prev_doc = scan_document(previous, store.units(previous.id)) if previous else None
    dossier = build_dossier(doc, prev_doc, run.options.get("inputs")
                            or _hashes_at_scan(store, run.options.get("bundle")))
    html = render_dossier_html(dossier, render_html(doc, run.diagram_svg))
    out = output or Path("out") / f"dossier-{run.id}"
    files = write_dossier(dossier, html, out, sign_key)
    typer.echo(f"wrote {out}: {', '.join(p.name for p in files)}"
               + (f" (changes since {previous.id})" if previous else ""))
    for w in dossier["warnings"]:
        typer.echo(f"WARNING: {w}")


def _hashes_at_scan(store: Store, bundle: str | None) -> dict[str, str] | None:
    """The digests of the files a run read, from the bundle the store keeps with it: for a run
    planned before the digests were recorded with it (``options.inputs``)."""
    from finmlsec.scan.bundle import hashes

    payload = store.bundle(bundle) if bundle else None
    return hashes(payload) if payload else None


def register(app: typer.Typer) -> None:
    app.command("dossier")(dossier_command)
