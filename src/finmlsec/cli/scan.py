"""``finmlsec scan``: measure the threats of a system with real attacks and countermeasures.

Exit codes: 0 the scan finished (and no threat reaches ``--fail-on``); 1 a threat's measured
risk as deployed reaches ``--fail-on``; 2 bad input (one line on stderr); 3 the scan finished
with failed units (resume it); 130 interrupted (resume it with ``--resume RUN_ID``).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

import typer


class ProfileName(StrEnum):
    quick = "quick"
    standard = "standard"
    thorough = "thorough"


class Level(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"


def scan_command(
    spec: Path | None = typer.Argument(None, help="The system description (YAML)."),
    profile: ProfileName = typer.Option(ProfileName.standard, "--profile", help="How much work."),
    json_out: bool = typer.Option(False, "--json", help="Print the JSON report on stdout."),
    fail_on: Level | None = typer.Option(
        None, "--fail-on", help="Exit 1 if a threat's measured risk reaches this level."
    ),
    include_accepted: bool = typer.Option(
        False, "--all", help="Also attack the threats the analysis accepted."
    ),
    db: str | None = typer.Option(None, "--db", help="Store URL or SQLite path [FINMLSEC_DB or ./finmlsec.db]."),
    executor: str = typer.Option(
        "process", "--executor", help="process (local pool), serial, or dask://HOST:PORT."
    ),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Local pool size."),
    seed: int = typer.Option(0, "--seed", help="Seed of every unit of work."),
    resume: str | None = typer.Option(
        None, "--resume", help="Finish the interrupted run RUN_ID (no SPEC needed)."
    ),
    trust_pickle: bool = typer.Option(False, "--trust-pickle", help="Load pickled models."),
    endpoint: str | None = typer.Option(
        None, "--endpoint", help="URL of the served model, for denial-of-service measurement."
    ),
    report: Path | None = typer.Option(None, "--report", help="Also write the HTML report here."),
    junit: Path | None = typer.Option(
        None, "--junit", help="Also write JUnit XML: a test case per threat, failed when its "
        "risk reaches --fail-on (high if not given)."),
    sarif: Path | None = typer.Option(None, "--sarif", help="Also write a SARIF 2.1.0 log."),
    attack: list[str] = typer.Option(
        [], "--attack", help="Run only this registered attack (repeatable)."
    ),
    defence: list[str] = typer.Option(
        [], "--defence", help="Try only this registered defence or scanned guard (repeatable)."
    ),
    unit_timeout: float | None = typer.Option(
        None, "--unit-timeout", min=0, metavar="SECONDS",
        help="Seconds a unit may run on up to 20,000 data cells (rows x columns), scaled up "
        "with the data size and the attack's cost; 0: no limit [the profile's: quick 20, "
        "standard 120, thorough none]."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
) -> None:
    """Plan from the threat model, run the attacks and countermeasures, store and decide."""
    from finmlsec.errors import ConfigError
    from finmlsec.scan import at_least, pipeline
    from finmlsec.store import Store

    store = Store.open(db)
    if resume:
        run_id = store.run(resume).id
    elif spec is None:
        raise ConfigError("give the SPEC to scan, or --resume RUN_ID to finish a stored run")
    else:
        if not spec.exists():
            raise ConfigError(f"spec file {str(spec)!r} does not exist; give the path of a YAML "
                              "system description")
        from finmlsec.cli._checks import check_only_attacks, check_planned

        check_only_attacks(spec, attack, include_accepted)
        run_id = pipeline.plan(spec, store=store, profile=profile.value, only=attack,
                               only_defences=defence, seed=seed,
                               include_accepted=include_accepted, trust_pickle=trust_pickle,
                               endpoint=endpoint, unit_timeout=unit_timeout)
        check_planned(store, run_id, attack)
    if not quiet:
        typer.echo(f"scan {run_id}", err=True)
    try:
        outcome = pipeline.run(store, run_id, executor=executor, workers=workers,
                               progress=not quiet)
    except KeyboardInterrupt:
        typer.echo(f"interrupted; resume with: finmlsec scan --resume {run_id}"
                   + (f" --db {db}" if db else ""), err=True)
        raise
    from finmlsec.report.scan import render_json

    doc, summary = outcome.document, outcome.summary
    if report is not None:
        pipeline.write_reports(outcome, {"html": report})
    from finmlsec.report.ci import write_ci

    write_ci(doc, junit, sarif, fail_on.value if fail_on else None)
    if json_out:
        typer.echo(render_json(doc))
    else:
        _print_summary(doc)
    if fail_on is not None and any(at_least(t["risk"], fail_on.value)
                                   for t in summary["threats"]):
        if not json_out:
            typer.echo(f"fail: a measured risk reaches {fail_on.value}", err=True)
        raise typer.Exit(1)
    if outcome.failed:
        typer.echo(f"some units failed; retry them with: finmlsec scan --resume {run_id}",
                   err=True)
        raise typer.Exit(3)


def _print_summary(doc: dict[str, Any]) -> None:
    """Two lines per threat, whole names and ids (never cut to a terminal's width)."""
    from finmlsec.report.words import overview

    s, ov = doc["summary"], overview(doc)
    typer.echo(f"{ov['title']}: type {doc['run']['system_type']}, run {doc['run']['id']} "
               f"({doc['run']['status']}); max risk {s['max_risk']}, residual "
               f"{ov['headline_residual']}")
    for t, v in zip(doc["threats"], ov["verdicts"], strict=True):
        succ = "" if t["success"] is None else f" (success {t['success']:.3f})"
        best = " + ".join(t["best"] or []) or "-"
        typer.echo(f"{v['verdict'].upper():<13} {v['title']}, via {v['via'].lower()} [{v['id']}]")
        typer.echo(f"{'':<13} risk {t['risk']}{succ}; best {best}; residual "
                   f"{t['residual_risk']}; {t['recommendation']}")
    typer.echo(f"report: finmlsec report {doc['run']['id']} --format html")


def register(app: typer.Typer) -> None:
    app.command("scan")(scan_command)
