"""``finmlsec datasets list`` and ``finmlsec datasets show NAME``: the shipped data and schemas."""

from __future__ import annotations

import json
from typing import Any

import typer


def _table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="The use cases' datasets: sizes, schemas, sources and licenses.", no_args_is_help=True
    )
    app.add_typer(group, name="datasets")

    @group.command("list")
    def list_(
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    ) -> None:
        """List the registered datasets (loaded with their default parameters)."""
        from finmlsec.datasets import DATASETS, load
        from finmlsec.datasets.info import describe

        infos = [describe(load(name)) for name in DATASETS.names()]
        if as_json:
            keys = (
                "name",
                "kind",
                "task",
                "rows",
                "shape",
                "classes",
                "positive_rate",
                "source",
                "license",
                "params",
            )
            typer.echo(json.dumps([{k: d[k] for k in keys} for d in infos], indent=2))
            return
        rows = [
            [
                d["name"],
                d["kind"],
                d["task"],
                f"{d['rows']:,}",
                str(len(d["classes"])),
                d["license"].split(" (")[0].split(";")[0],
            ]
            for d in infos
        ]
        typer.echo(_table(rows, ["name", "kind", "task", "rows", "classes", "license"]))

    @group.command("show")
    def show(
        name: str = typer.Argument(..., help="A dataset name (see `finmlsec datasets list`)."),
        param: list[str] = typer.Option(
            [], "--param", "-p", help="A loader parameter KEY=VALUE (repeatable), e.g. n_rows=5000."
        ),
        head: int = typer.Option(0, "--head", min=0, max=1000, help="Also print the first N rows."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
    ) -> None:
        """Show one dataset: size, classes, source, license, parameters and feature schema."""
        from finmlsec.datasets import DATASETS, load
        from finmlsec.datasets.info import describe, feature_rows, loader_params, parse_params

        DATASETS.get(name)  # unknown name: a clear error listing the known ones
        params = parse_params(name, param)
        ds = load(name, **params)
        info = describe(ds, {**loader_params(name), **params})
        if as_json:
            if head:
                info["head"] = _head(ds, head)
            typer.echo(json.dumps(info, indent=2))
            return
        typer.echo(_text(info, feature_rows))
        if head:
            typer.echo("")
            typer.echo(
                _table(
                    [[str(v) for v in r.values()] for r in _head(ds, head)], list(_head(ds, 1)[0])
                )
            )


def _head(ds: Any, n: int) -> list[dict[str, Any]]:
    """The first ``n`` rows as JSON-ready dicts, with the label; images as their pixel count."""
    import pandas as pd

    n = min(n, len(ds))
    labels = [ds.classes[int(i)] for i in ds.y[:n]]
    if isinstance(ds.X, pd.DataFrame):
        rows = ds.X.head(n).to_dict(orient="records")
        return [
            {**{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()}, "label": lab}
            for r, lab in zip(rows, labels, strict=True)
        ]
    if ds.kind == "text":
        return [{"text": t, "label": lab} for t, lab in zip(ds.X[:n], labels, strict=True)]
    return [
        {"pixels": int(len(x)), "ink": round(float(x.sum()), 3), "label": lab}
        for x, lab in zip(ds.X[:n], labels, strict=True)
    ]


def _text(info: dict[str, Any], feature_rows: Any) -> str:
    counts = ", ".join(f"{c}: {n:,}" for c, n in info["class_counts"].items())
    params = ", ".join(f"{k}={v!r}" for k, v in info["params"].items()) or "(none)"
    out = [
        f"{info['name']}: {info['description']}",
        "",
        f"kind        {info['kind']} ({info['task']}), {info['rows']:,} rows, input shape "
        f"{tuple(info['shape'])}",
        f"classes     {counts}",
        f"parameters  {params}",
        f"source      {info['source']}",
        f"license     {info['license']}",
    ]
    if info["citation"]:
        out.append(f"citation    {info['citation']}")
    schema = info["schema"]
    if schema is None:
        out += ["", "schema      none (the input is not a table of fields)"]
    else:
        n = len(schema["features"])
        line = f"schema      {n} features"
        if schema["target"]:
            line += f"; label {schema['target']!r}, positive class {schema['positive_class']!r}"
        out += ["", line]
        if n > 60:
            out.append(f"            (per-pixel features; first: {schema['features'][0]['name']})")
        else:
            header = ["feature", "type", "range / categories", "flags", "cost"]
            out += ["", _table(feature_rows(schema), header)]
    return "\n".join(out)
