"""``finmlsec evidence``: the paper's countermeasures, claimed and measured (``out/evidence.md``).

It reads the default store (``FINMLSEC_DB`` or ``./finmlsec.db``, as ``scan``, ``runs`` and
``report`` do) unless ``--db`` names another; ``--build`` scans the five use cases into it first.
The repository's ``docs/evidence.md`` is only rewritten when ``-o docs/evidence.md`` asks for it.
"""

from __future__ import annotations

from pathlib import Path

import typer


def evidence_command(
    output: Path = typer.Option(Path("out/evidence.md"), "--output", "-o",
                                help="Markdown file to write."),
    db: str | None = typer.Option(
        None, "--db", help="Store with the scans [FINMLSEC_DB or ./finmlsec.db]."),
    build: bool = typer.Option(
        False, "--build", help="First build and scan all five use cases into OUT."
    ),
    out: Path = typer.Option(Path("out/evidence"), "--out",
                             help="Directory of the models and reports --build writes."),
    profile: str = typer.Option("quick", "--profile", help="Scan profile for --build."),
    executor: str = typer.Option("process", "--executor",
                                 help="process (local pool), serial, or dask://HOST:PORT."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
) -> None:
    """State, per countermeasure of Table 2, what the paper claims and what the scans measured."""
    from finmlsec.scan.evidence import evidence_markdown, latest_runs
    from finmlsec.scan.usecases import run_usecase
    from finmlsec.store import Store
    from finmlsec.usecases import USECASES

    store_url = db
    if build:
        for usecase in USECASES:
            r = run_usecase(usecase, out, profile=profile, db=store_url, executor=executor,
                            progress=not quiet)
            typer.echo(f"{usecase}: run {r['run_id']} {r['status']} in {r['seconds']} s", err=True)
    runs = latest_runs(Store.open(store_url))
    cmd = ("finmlsec evidence" + (f" --build --profile {profile} --out {out}" if build else "")
           + (f" --db {db}" if db else ""))
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(evidence_markdown(runs, cmd), encoding="utf-8")
    typer.echo(f"wrote {output} from {len(runs)} scan(s)")


def register(app: typer.Typer) -> None:
    app.command("evidence")(evidence_command)
