"""``finmlsec scan``: measure the threats of a system with real attacks and countermeasures.

``finmlsec scan INVENTORY.yaml`` (a YAML file whose key ``systems`` lists specs) scans a portfolio
of systems under one id (:mod:`finmlsec.scan.portfolio`).

Exit codes: 0 the scan finished (and no threat reaches ``--fail-on``); 1 a threat's measured
risk as deployed reaches ``--fail-on``; 2 bad input (one line on stderr); 3 the scan finished
with failed units, or (a portfolio) some system failed or did not finish (resume it); 130
interrupted (resume it with ``--resume RUN_ID``).
"""

from __future__ import annotations

import dataclasses
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
    spec: Path | None = typer.Argument(
        None, help="The system description (YAML), or an inventory whose key 'systems' lists "
        "specs (a portfolio)."),
    profile: ProfileName | None = typer.Option(
        None, "--profile", help="How much work [standard; an inventory's 'defaults' if given]."),
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
    seed: int | None = typer.Option(
        None, "--seed", help="Seed of every unit of work [0; an inventory's 'defaults' if given]."),
    resume: str | None = typer.Option(
        None, "--resume",
        help="Finish the interrupted run RUN_ID, or portfolio PORTFOLIO_ID (no SPEC needed)."
    ),
    trust_pickle: bool = typer.Option(False, "--trust-pickle", help="Load pickled models."),
    endpoint: str | None = typer.Option(
        None, "--endpoint", help="URL of the served model, for denial-of-service measurement."
    ),
    report: Path | None = typer.Option(
        None, "--report", help="Also write the report here: Markdown for a .md file, JSON for "
        ".json, HTML otherwise."),
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
        "with the data size and the attack's cost, and at least twice the time of the model "
        "fits the unit makes; 0: no limit [the profile's: quick 20, standard 120, "
        "thorough 900]."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    out: Path | None = typer.Option(
        None, "--out", help="A portfolio: write portfolio.html, .md and .json here "
        "[out/PORTFOLIO_ID]."),
    mlflow_experiment: str | None = typer.Option(
        None, "--mlflow-experiment", metavar="NAME",
        help="Log the results to this MLflow experiment (extra 'mlflow')."),
    mlflow_tracking_uri: str | None = typer.Option(
        None, "--mlflow-tracking-uri", metavar="URI",
        help="The MLflow tracking store [MLFLOW_TRACKING_URI]."),
) -> None:
    """Plan from the threat model, run the attacks and countermeasures, store and decide."""
    from finmlsec.errors import ConfigError
    from finmlsec.scan import at_least, pipeline
    from finmlsec.scan.inventory import is_inventory
    from finmlsec.store import Store

    if (resume and resume.startswith("pf-")) or (
            resume is None and spec is not None and spec.is_file() and is_inventory(spec)):
        for flag, given in (("--endpoint", endpoint), ("--junit", junit), ("--sarif", sarif),
                            ("--all", include_accepted), ("--unit-timeout", unit_timeout),
                            ("--report", report)):
            if given:
                raise ConfigError(f"{flag} is for one spec, not an inventory; give it per "
                                  "system in the inventory or scan that spec alone" if
                                  flag != "--report" else
                                  "--report is for one spec; a portfolio writes its reports "
                                  "with --out DIR")
        _scan_portfolio(spec, resume, db=db, profile=profile.value if profile else None,
                        seed=seed, attack=attack, defence=defence, trust_pickle=trust_pickle,
                        executor=executor, workers=workers, quiet=quiet, json_out=json_out,
                        fail_on=fail_on.value if fail_on else None, out=out,
                        mlflow_experiment=mlflow_experiment,
                        mlflow_tracking_uri=mlflow_tracking_uri)
        return
    if out is not None:
        raise ConfigError("--out is for an inventory (a portfolio); for one spec use --report")
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
        run_id = pipeline.plan(spec, store=store, profile=(profile or ProfileName.standard).value,
                               only=attack,
                               only_defences=defence, seed=seed if seed is not None else 0,
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
        # the format the file's name asks for (report.md: Markdown), HTML otherwise
        from finmlsec.cli.report import by_suffix

        pipeline.write_reports(outcome, {by_suffix(report).value: report})
    from finmlsec.report.ci import write_ci

    write_ci(doc, junit, sarif, fail_on.value if fail_on else None)
    if mlflow_experiment:
        from finmlsec.report.scan import render_html
        from finmlsec.report.to_mlflow import log_scan

        mlrun = log_scan(doc, render_html(doc, outcome.diagram_svg), experiment=mlflow_experiment,
                         tracking_uri=mlflow_tracking_uri)
        if not quiet:
            typer.echo(f"logged to MLflow experiment {mlflow_experiment!r}, run {mlrun}",
                       err=True)
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


def _scan_portfolio(inventory: Path | None, resume: str | None, *, db: str | None,
                    profile: str | None, seed: int | None, attack: list[str],
                    defence: list[str],
                    trust_pickle: bool, executor: str, workers: int | None, quiet: bool,
                    json_out: bool, fail_on: str | None, out: Path | None,
                    mlflow_experiment: str | None, mlflow_tracking_uri: str | None) -> None:
    """``finmlsec scan INVENTORY.yaml`` (or ``--resume PORTFOLIO_ID``): every system, one id."""
    from finmlsec.report.portfolio import document, render_json, write_portfolio_reports
    from finmlsec.scan import portfolio
    from finmlsec.store import Store

    def echo(message: str) -> None:
        if not quiet:
            typer.echo(message, err=True)

    store = Store.open(db)
    owner = portfolio.new_owner()
    if resume:
        pf = store.portfolio(resume)
        portfolio.claim(store, pf.id, owner)
        echo(f"portfolio {pf.id} ({pf.inventory_path}), resumed")
    else:
        assert inventory is not None
        inv = _load_inventory(inventory, profile=profile, seed=seed, attack=attack,
                              defence=defence, trust_pickle=trust_pickle)
        pf, resumed = portfolio.start(store, inv, owner=owner)
        echo(f"portfolio {pf.id}: {len(pf.systems)} systems from {inv.path}"
             + (" (resuming its unfinished scan)" if resumed else ""))
    try:
        portfolio.run(store, pf.id, executor=executor, workers=workers, progress=not quiet,
                      echo=echo, describe=_describe, owner=owner)
    except KeyboardInterrupt:
        typer.echo(f"interrupted; resume with: finmlsec scan --resume {pf.id}"
                   + (f" --db {db}" if db else ""), err=True)
        raise
    doc = document(store, pf.id)
    paths = write_portfolio_reports(doc, out or Path("out") / pf.id)
    echo(f"portfolio reports: {', '.join(str(p) for p in paths.values())}")
    if mlflow_experiment:
        _log_portfolio(store, doc, paths, mlflow_experiment, mlflow_tracking_uri, echo)
    if json_out:
        typer.echo(render_json(doc))
    else:
        _print_portfolio(doc)
    unfinished = [s["id"] for s in doc["systems"] if s["status"] != "done"]
    if unfinished:
        typer.echo(f"{len(unfinished)} system(s) did not finish ({', '.join(unfinished)}); "
                   f"re-run to resume: finmlsec scan --resume {pf.id}"
                   + (f" --db {db}" if db else ""), err=True)
        raise typer.Exit(3)
    if fail_on is not None:
        reached = portfolio.reaches(doc, store, fail_on)
        if reached:
            if not json_out:
                typer.echo(f"fail: a measured risk reaches {fail_on} in {', '.join(reached)}",
                           err=True)
            raise typer.Exit(1)


def _describe(exc: BaseException) -> str:
    """A system's error as one line; a bug's traceback goes to a log file the line names."""
    from finmlsec.cli._errors import internal_error, one_line
    from finmlsec.errors import FinmlsecError

    return one_line(str(exc)) if isinstance(exc, FinmlsecError) else internal_error(exc)


def _load_inventory(path: Path, *, profile: str | None, seed: int | None, attack: list[str],
                    defence: list[str], trust_pickle: bool) -> Any:
    """The inventory, with the command line's options over its ``defaults``; every system's
    spec, attack and defence names checked before anything is stored (exit 2, one line)."""
    from finmlsec.cli._checks import check_only_attacks
    from finmlsec.defences import measured_class
    from finmlsec.errors import FinmlsecError
    from finmlsec.scan.inventory import digest_of, load_inventory

    inv = load_inventory(path, profile=profile, seed=seed)
    systems = []
    for s in inv.systems:
        s = dataclasses.replace(
            s, attacks=tuple(attack) or s.attacks, defences=tuple(defence) or s.defences,
            trust_pickle=s.trust_pickle or trust_pickle)
        try:
            for name in s.defences:
                measured_class(name)
            check_only_attacks(Path(s.spec_path), list(s.attacks), False)
        except FinmlsecError as exc:
            raise type(exc)(f"{inv.path}: system {s.id!r}: {exc}") from None
        systems.append(s)
    return dataclasses.replace(inv, systems=tuple(systems), digest=digest_of(systems))


def _log_portfolio(store: Any, doc: dict[str, Any], paths: dict[str, Path], experiment: str,
                   tracking_uri: str | None, echo: Any) -> None:
    from finmlsec.report.scan import render_html, scan_document
    from finmlsec.report.to_mlflow import log_portfolio, log_scan

    for s in doc["systems"]:
        if s["run_id"] is None or s["status"] == "error":
            continue
        run = store.run(s["run_id"])
        sdoc = scan_document(run, store.units(run.id))
        log_scan(sdoc, render_html(sdoc, run.diagram_svg), experiment=experiment,
                 tracking_uri=tracking_uri, tags={"finmlsec.portfolio_id": doc["portfolio"]["id"],
                                                  "finmlsec.system_id": s["id"]})
    mlrun = log_portfolio(doc, paths, experiment=experiment, tracking_uri=tracking_uri)
    echo(f"logged to MLflow experiment {experiment!r}: portfolio run {mlrun}")


def _print_portfolio(doc: dict[str, Any]) -> None:
    """One line per system, highest residual risk first (errors before all)."""
    p, s = doc["portfolio"], doc["summary"]
    typer.echo(f"portfolio {p['name']} ({p['id']}, {p['status']}): {s['systems']} systems; "
               f"max risk {s['max_risk']}, max residual {s['max_residual_risk']}")
    from finmlsec.report.portfolio import system_warnings

    for line in system_warnings(doc):
        typer.echo(f"WARNING: {line}")
    for x in doc["systems"]:
        if x["status"] == "error":
            typer.echo(f"ERROR         {x['id']}: {x['error']}")
            continue
        c = x["changes"]
        since = ("first validation" if c["previous_run"] is None else
                 ", ".join(f"{len(c[k])} {k}" for k in ("new", "fixed", "worse", "better")
                           if c[k]) or "no change")
        typer.echo(f"{str(x['max_residual_risk']).upper():<13} {x['id']}: type "
                   f"{x['paper_type']}, risk {x['max_risk']}, residual {x['headline_residual']}; "
                   f"{since}; run {x['run_id']} ({x['status']})")


def _print_summary(doc: dict[str, Any]) -> None:
    """Two lines per threat, whole names and ids (never cut to a terminal's width)."""
    from finmlsec.report.words import overview

    s, ov = doc["summary"], overview(doc)
    typer.echo(f"{ov['title']}: type {doc['run']['system_type']}, run {doc['run']['id']} "
               f"({doc['run']['status']}); max risk {s['max_risk']}, residual "
               f"{ov['headline_residual']}")
    for w in s.get("warnings") or ():
        typer.echo(f"WARNING: {w}")
    for t, v in zip(doc["threats"], ov["verdicts"], strict=True):
        succ = "" if t["success"] is None else f" (success {t['success']:.3f})"
        best = " + ".join(t["best"] or []) or "-"
        typer.echo(f"{v['verdict'].upper():<13} {v['title']}, via {v['via'].lower()} [{v['id']}]")
        typer.echo(f"{'':<13} risk {t['risk']}{succ}; best {best}; residual "
                   f"{t['residual_risk']}; {t['recommendation']}")
    typer.echo(f"report: finmlsec report {doc['run']['id']} --format html")


def register(app: typer.Typer) -> None:
    app.command("scan")(scan_command)
