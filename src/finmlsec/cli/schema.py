"""``finmlsec schema infer DATA.csv --label COL``: write the feature schema of a user's own data.

The CSV is read as pandas reads it for training (so the ``dtype`` of each field is what the model
was trained with); the commented YAML goes to ``-o`` or standard output.
"""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Feature schemas for your own data.", no_args_is_help=True)
    app.add_typer(group, name="schema")

    @group.command("infer")
    def infer(
        data: Path = typer.Argument(..., help="CSV file of the data (one column per field)."),
        label: str = typer.Option(..., "--label", help="The label column."),
        favourable: str | None = typer.Option(
            None, "--favourable",
            help="The outcome an applicant wants (approve, legit, ...): evasion aims at it."),
        output: Path | None = typer.Option(None, "-o", "--output",
                                           help="Write the schema here (default: print it)."),
    ) -> None:
        """Infer a complete, commented feature schema from DATA.csv: types and dtypes as the
        model reads them, ranges, categories, missing values, fields to review."""
        from finmlsec.datasets._files import read_csv
        from finmlsec.datasets.schema_infer import infer_schema, to_yaml
        from finmlsec.errors import DataError

        if not data.is_file():
            raise DataError(f"{str(data)!r}: file not found")
        try:
            frame = read_csv(data)
        except (ValueError, OSError) as exc:
            raise DataError(f"{str(data)!r}: cannot read the CSV: "
                            f"{str(exc).splitlines()[0]}") from None
        if label not in frame.columns:
            raise DataError(f"{str(data)!r}: no label column {label!r}; columns are "
                            f"{list(frame.columns)}")
        if frame[label].isna().any():
            raise DataError(f"{str(data)!r}: {int(frame[label].isna().sum())} row(s) have no "
                            f"label in {label!r}; remove them")
        inferred = infer_schema(frame.drop(columns=[label]), y=frame[label].astype(str),
                                label=label, favourable=favourable)
        text = to_yaml(inferred, source=data.name)
        if output is None:
            typer.echo(text, nl=False)
        else:
            output.write_text(text, encoding="utf-8")
            ids = inferred.schema.ids
            left = f", row id(s) {list(ids)} left out of the model's input" if ids else ""
            typer.echo(f"wrote {output} ({len(inferred.schema.features)} fields{left}); review "
                       "it, then point data.schema at it")
