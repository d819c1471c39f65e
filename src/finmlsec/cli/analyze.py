"""``finmlsec analyze``, ``finmlsec types`` and ``finmlsec init``."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from finmlsec.errors import ConfigError


def _write(text: str, output: Path | None) -> None:
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {str(output)!r} ({exc.strerror}); choose another -o path") from None
    typer.echo(f"wrote {output}", err=True)


def analyze_command(
    spec: Path = typer.Argument(..., help="The YAML system description (see docs/spec.md)."),
    fmt: str = typer.Option("md", "--format", "-f", help="html, md or json."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write here instead of stdout."),
) -> None:
    """Derive the paper's type, attacker reach, threats, countermeasures and risk decisions."""
    from finmlsec.report.analysis import FORMATS, render_analysis
    from finmlsec.spec import load_spec
    from finmlsec.threatmodel import analyze

    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    result = analyze(load_spec(spec))
    _write(render_analysis(result, fmt), output)


def types_command(
    fmt: str = typer.Option("text", "--format", "-f", help="text or json."),
) -> None:
    """Print the paper's 12 system types (and the 3 excluded partitions)."""
    from finmlsec.threatmodel import EXCLUDED, type_table
    from finmlsec.threatmodel.types import describe_pattern

    rows = type_table()
    excluded = [{"partition": describe_pattern(p), "reason": r} for p, r in EXCLUDED.items()]
    if fmt == "json":
        typer.echo(json.dumps({"types": rows, "excluded": excluded}, indent=2))
        return
    if fmt != "text":
        raise ConfigError(f"--format must be text or json; got {fmt!r}")
    typer.echo("type  TDP SU  MG  MO  orgs  attacker can reach")
    for row in rows:
        pat = row["pattern"]
        assert isinstance(pat, dict)
        letters = "  ".join(f"{v:<2}" for v in pat.values())
        reach = ", ".join(row["reach"]) or "none"  # type: ignore[arg-type]
        typer.echo(f"{row['type']:>4}  {letters}  {row['organisations']:>4}  {reach}")
    typer.echo("")
    typer.echo("Letters name organisations. Excluded partitions (not realistically deployable):")
    for item in excluded:
        typer.echo(f"  {item['partition']}")
    typer.echo(f"  reason: {excluded[0]['reason']}")


def register(app: typer.Typer) -> None:
    app.command("analyze")(analyze_command)
    app.command("types")(types_command)
