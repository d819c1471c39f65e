"""``finmlsec report RUN_ID``: a stored scan as HTML (self-contained), Markdown or JSON; a
portfolio's report for a portfolio id (``pf-...``)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer


class Format(StrEnum):
    html = "html"
    md = "md"
    json = "json"


def report_command(
    run_id: str = typer.Argument(
        ..., help="Run id (a unique prefix, or 'last'), or a portfolio id (pf-...)."),
    fmt: Format | None = typer.Option(
        None, "--format", "-f",
        help="html, md or json [from the --output file's suffix (.md, .json), else html]."),
    output: Path | None = typer.Option(
        None, "--output", "-o",
        help="File to write [html: finmlsec-scan-RUN_ID.html; md/json: stdout].",
    ),
    db: str | None = typer.Option(None, "--db", help="Store URL or SQLite path [FINMLSEC_DB or ./finmlsec.db]."),
) -> None:
    """Write the report of a stored scan."""
    fmt = fmt or by_suffix(output)
    from finmlsec.report.scan import render_json, render_markdown, scan_document, write_report
    from finmlsec.store import Store

    store = Store.open(db)
    if run_id.startswith("pf-"):
        from finmlsec.report.portfolio import RENDER, document

        text = RENDER[fmt.value](document(store, run_id))
        if output is None and fmt is Format.html:
            output = Path(f"finmlsec-{store.portfolio(run_id).id}.html")
        if output is None:
            typer.echo(text)
            return
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}")
        return
    run = store.run(run_id)
    doc = scan_document(run, store.units(run.id))
    if output is None and fmt is Format.html:
        output = Path(f"finmlsec-scan-{run.id}.html")
    if output is None:
        typer.echo(render_markdown(doc) if fmt is Format.md else render_json(doc))
        return
    path = write_report(doc, fmt.value, output, run.diagram_svg)
    typer.echo(f"wrote {path}")


def by_suffix(path: Path | None) -> Format:
    """The format a file's name asks for (``report.md``: Markdown, ``.json``: JSON), HTML
    otherwise.

    Example:
        >>> by_suffix(Path("out/r.MD")).value, by_suffix(None).value
        ('md', 'html')
    """
    suffix = path.suffix.lower() if path is not None else ""
    return {".md": Format.md, ".markdown": Format.md, ".json": Format.json}.get(suffix, Format.html)


def register(app: typer.Typer) -> None:
    app.command("report")(report_command)
