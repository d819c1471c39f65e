"""``finmlsec demo build USECASE --out DIR``: train a use case's model(s), save them safely, and
write the spec, the data splits and the model card.

The ``demo`` command group is created here; other modules add commands to it in their own
``register`` (``cli/demo_run.py`` adds ``demo run``): see :func:`demo_group`.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from finmlsec.cli.choices import UseCaseName


def demo_build_command(
    usecase: UseCaseName = typer.Argument(..., help="The use case to build."),
    out: Path | None = typer.Option(None, "--out", help="Output directory [out/USECASE]."),
    seed: int = typer.Option(0, "--seed", help="Seed of the splits and the training."),
    json_out: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    rows: int | None = typer.Option(
        None, "--rows", min=1000, help="fraud only: simulate this many transactions into "
        "Parquet (written in parts, memory bounded), train on a sample, and write a spec that "
        "reads the Parquet data in chunks (see docs/scale.md)."),
    sample: int = typer.Option(
        50_000, "--sample", min=3, help="With --rows: the spec's data.sample, the rows the "
        "scan keeps (a seeded, stratified sample)."),
) -> None:
    """Train the use case's standard model(s); write models, spec.yaml, splits and model card."""
    from finmlsec.usecases import build, build_at_scale

    if rows is not None:
        result = build_at_scale(usecase.value, out or Path("out") / usecase.value, rows=rows,
                                seed=seed, sample=sample)
    else:
        result = build(usecase.value, out or Path("out") / usecase.value, seed=seed)
    if json_out:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    typer.echo(f"{result.usecase}: built in {result.seconds:.1f} s into {result.out}")
    for m in result.models:
        figures = ", ".join(f"{k} {v:.3f}" for k, v in m.metrics.items())
        gate = ""
        if m.gate:
            gate = f"  [gate {m.gate[0]} >= {m.gate[1]}: {'met' if m.passes else 'NOT MET'}]"
        typer.echo(f"  {m.name} ({', '.join(m.formats)}): {figures}{gate}")
    typer.echo(f"spec: {result.spec}\nmodel card: {result.card_md}")


def demo_group(app: typer.Typer) -> typer.Typer:
    """The ``demo`` group of ``app``, created on first use."""
    group = next((g.typer_instance for g in app.registered_groups
                  if g.name == "demo" and g.typer_instance is not None), None)
    if group is None:
        group = typer.Typer(help="The paper's use cases, runnable.", no_args_is_help=True)
        app.add_typer(group, name="demo")
    return group


def register(app: typer.Typer) -> None:
    demo_group(app).command("build")(demo_build_command)
