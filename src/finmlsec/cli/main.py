"""Entry point of the ``finmlsec`` command.

Command modules live beside this file; every module with a ``register(app: typer.Typer)`` function
is registered (in name order).

Exit codes, the same for every command:

- 0: done.
- 1: a measured risk reaches ``--fail-on`` (``scan``); nothing else exits 1.
- 2: a user error (bad option, missing file, unknown name, unreachable database...): one line on
  stderr saying what was wrong and what to do, never a traceback.
- 3: ``scan`` finished with failed units (finish them with ``--resume RUN_ID``).
- 4: an internal error (a bug): one line on stderr naming a log file that holds the traceback.
- 5: verification failed: tampering detected (``audit verify``, ``dossier verify``, ``feedback
  list`` from a log that does not verify, a server whose audit log does not verify with its key):
  one line on stderr, ``verification failed: ...`` naming the problem.
- 130: interrupted.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

import finmlsec
import finmlsec.cli
from finmlsec.cli._errors import (
    EXIT_INTERNAL,
    EXIT_TAMPERED,
    EXIT_USER,
    internal_error,
    one_line,
    usage_line,
)
from finmlsec.errors import AuditError, FinmlsecError
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
    _plain_help(app)
    return app


def _plain_help(app: typer.Typer) -> None:
    """Plain help text (flags shown as flags, defaults in full, nothing cut off or boxed)."""
    app.rich_markup_mode = None
    for group in app.registered_groups:
        if group.typer_instance is not None:
            _plain_help(group.typer_instance)


def build_command() -> typer.core.TyperGroup:
    """The click command tree of ``finmlsec``, with readable metavars (``--db DB``, not
    ``<str>``)."""
    from finmlsec.cli._errors import readable_metavars

    command = typer.main.get_command(build_app())
    readable_metavars(command)
    return command  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> None:
    from typer import Abort
    from typer._click.exceptions import ClickException, NoArgsIsHelpError

    try:
        code = build_command().main(args=argv, prog_name="finmlsec", standalone_mode=False)
    except NoArgsIsHelpError as exc:  # a group given no command: its help
        typer.echo(exc.ctx.get_help() if exc.ctx else "")
        sys.exit(0)
    except ClickException as exc:
        typer.echo(usage_line(exc), err=True)
        sys.exit(EXIT_USER)
    except AuditError as exc:  # tampering detected: not the user's mistake
        typer.echo(f"verification failed: {one_line(str(exc))}", err=True)
        sys.exit(EXIT_TAMPERED)
    except FinmlsecError as exc:
        typer.echo(f"error: {one_line(str(exc))}", err=True)
        sys.exit(EXIT_USER)
    except ModuleNotFoundError as exc:  # an optional dependency this command needs
        if (exc.name or "").split(".")[0] not in EXTRAS:
            typer.echo(internal_error(exc), err=True)
            sys.exit(EXIT_INTERNAL)
        typer.echo(f"error: {missing(exc.name or '', 'this command')}", err=True)
        sys.exit(EXIT_USER)
    except (KeyboardInterrupt, Abort):
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug: one line and the traceback in a log file
        typer.echo(internal_error(exc), err=True)
        sys.exit(EXIT_INTERNAL)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
