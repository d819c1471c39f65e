"""``finmlsec demo run USECASE --out DIR``: a use case end to end (build, analyze, scan, report).

The ``demo`` command group belongs to ``cli/demo.py`` (``demo build``); this module adds ``run`` to
that group when it exists (modules register in name order, ``demo`` before ``demo_run``) and
creates the group otherwise.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path

import typer

from finmlsec.cli.choices import UseCaseName


class ProfileName(StrEnum):
    quick = "quick"
    standard = "standard"
    thorough = "thorough"


def demo_run_command(
    usecase: UseCaseName = typer.Argument(..., help="The use case to run."),
    out: Path = typer.Option(Path("out"), "--out", help="Directory for the model and reports."),
    profile: ProfileName = typer.Option(ProfileName.standard, "--profile",
                                       help="How much work (see `finmlsec scan`)."),
    db: str | None = typer.Option(None, "--db", help="Store URL or SQLite path [FINMLSEC_DB or ./finmlsec.db]."),
    executor: str = typer.Option("process", "--executor", help="process, serial, dask://H:P."),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Local pool size."),
    seed: int = typer.Option(0, "--seed", help="Seed of the build and the scan."),
    skip_build: bool = typer.Option(False, "--skip-build", help="Reuse OUT/USECASE."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    attack: list[str] = typer.Option([], "--attack", help="Run only these attacks."),
) -> None:
    """Build the use case's model, analyse it, scan it and write the HTML report under OUT."""
    from finmlsec.scan.usecases import run_usecase

    result = run_usecase(
        usecase.value, out, profile=profile.value, db=db, executor=executor, workers=workers,
        seed=seed, skip_build=skip_build, progress=not quiet, only=tuple(attack),
    )
    if json_out:
        typer.echo(json.dumps(result, indent=2))
        return
    typer.echo(
        f"{result['usecase']}: type {result['type']}, run {result['run_id']} ({result['status']}), "
        f"max risk {result['max_risk']} -> residual {result['max_residual_risk']}, "
        f"{result['seconds']} s\nreport: {result['reports']['html']}\n"
        f"analysis: {result['analysis_report']}"
    )


def register(app: typer.Typer) -> None:
    group = next((g.typer_instance for g in app.registered_groups
                  if g.name == "demo" and g.typer_instance is not None), None)
    if group is None:
        group = typer.Typer(help="The paper's use cases, runnable.", no_args_is_help=True)
        app.add_typer(group, name="demo")
    group.command("run")(demo_run_command)
