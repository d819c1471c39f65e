"""Entry point of the ``finmlsec`` command.

Command modules live beside this file; every module with a ``register(app: typer.Typer)`` function
is registered (in name order). A :class:`~finmlsec.errors.FinmlsecError` becomes one line on
stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

import finmlsec
import finmlsec.cli
from finmlsec.errors import FinmlsecError
from finmlsec.extras import EXTRAS, missing


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="finmlsec",
        help="Security analysis, attacks and defences for ML systems in the financial sector.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )

    @app.callback(invoke_without_command=True)
    def _root(
        version: bool = typer.Option(False, "--version", help="Print the version and exit."),
    ) -> None:
        if version:
            typer.echo(f"finmlsec {finmlsec.__version__}")
            raise typer.Exit()

    for info in sorted(pkgutil.iter_modules(finmlsec.cli.__path__), key=lambda m: m.name):
        if info.name in {"main"} or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"finmlsec.cli.{info.name}")
        register = getattr(module, "register", None)
        if callable(register):
            register(app)
    return app


def main(argv: list[str] | None = None) -> None:
    app = build_app()
    try:
        app(args=argv, prog_name="finmlsec")
    except FinmlsecError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except ModuleNotFoundError as exc:  # an optional dependency this command needs
        if (exc.name or "").split(".")[0] not in EXTRAS:
            raise
        typer.echo(f"error: {missing(exc.name or '', 'this command')}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
