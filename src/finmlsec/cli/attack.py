"""``finmlsec attack``: list the registered attacks, or run one against a spec's target.

``finmlsec attack list [--json]`` shows every registered attack with what it needs (probabilities
or labels, data access, white- or black-box). ``finmlsec attack NAME --spec SPEC [--budget N]
[--param k=v ...] [--access proba|rounded|label] [--strict] [--json]`` loads the spec's target and
data (:func:`finmlsec.scenario.load_scenario`), runs the attack through a budgeted oracle with a
progress bar on stderr, and prints the result (or its JSON).

Attack names, their shell completion and the ``--access`` levels come from the registry and the
oracle (:data:`~finmlsec.attacks.ATTACKS`, :class:`~finmlsec.targets.oracle.Access`), read when
the command runs: a newly registered attack is listed, completed and runnable with no edit here.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import typer

from finmlsec.errors import ConfigError


def attack_names(incomplete: str = "") -> list[str]:
    """The registered attack names starting with ``incomplete`` (shell completion)."""
    from finmlsec.attacks import ATTACKS

    return [n for n in ATTACKS.names() if n.startswith(incomplete)]


def access_levels() -> list[str]:
    """What ``--access`` accepts: the oracle's access levels."""
    from finmlsec.targets.oracle import Access

    return [a.value for a in Access]


def describe(cls: Any) -> dict[str, Any]:
    """What ``finmlsec attack list`` shows about one attack class."""
    from finmlsec.attacks.base import ORACLE_NEEDS

    needs = set(cls.needs)
    if needs & {"gradient", "white_box"}:
        output, box = "gradients", "white-box"
    elif needs & {"proba", "rounded"}:
        output, box = "probabilities", "black-box"
    elif "label" in needs:
        output, box = "labels", "black-box"
    else:
        output, box = "none (no model queries)", "black-box"
    return {
        "name": cls.name, "threat": cls.threat, "via": cls.via, "output": output, "box": box,
        "data": sorted(needs - ORACLE_NEEDS), "summary": cls.summary,
        "atlas": list(cls.atlas), "owasp": list(cls.owasp), "input_kinds": list(cls.input_kinds),
    }


def parse_params(cls: Any, pairs: list[str]) -> dict[str, Any]:
    """``k=v`` strings as keyword parameters of ``cls`` (values read as JSON when they parse)."""
    fields = {f.name: f for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else {}
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--param expects k=v, got {pair!r}")
        key, raw = pair.split("=", 1)
        key = key.strip()
        if key not in fields:
            raise ConfigError(f"attack {cls.name!r} has no parameter {key!r}; its parameters: "
                              f"{', '.join(fields) or '(none)'}")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        default = fields[key].default
        if isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        out[key] = value
    return out


def default_access(cls: Any) -> str:
    needs = set(cls.needs)
    if needs & {"gradient", "white_box"}:
        return "white_box"
    if needs & {"proba"}:
        return "proba"
    if "rounded" in needs:
        return "rounded"
    return "label"


def _print_list(as_json: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    from finmlsec.attacks import ATTACKS

    rows = [describe(cls) for _, cls in ATTACKS.items()]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="Registered attacks")
    for col in ("name", "threat", "via", "model output", "access", "data", "summary"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["name"], r["threat"], r["via"], r["output"], r["box"],
                      ", ".join(r["data"]) or "-", r["summary"])
    Console(width=200).print(table)


def _print_result(result: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{result.attack}[/bold]  threat={result.threat}  via={result.via}")
    console.print(f"success {result.success:.4f}   queries {result.queries}   "
                  f"{result.seconds:.2f} s")
    table = Table(show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k, v in sorted(result.metrics.items()):
        table.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    console.print(table)
    for note in result.notes:
        console.print(f"- {note}")


def run_attack(name: str, spec: Path, *, budget: int | None, params: list[str],
               access: str | None, decimals: int, strict: bool, trust_pickle: bool,
               progress: bool = True, max_victims: int = 100) -> Any:
    """Load the spec's scenario and run one attack; returns the AttackResult."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from finmlsec.attacks import ATTACKS
    from finmlsec.attacks.base import ORACLE_NEEDS
    from finmlsec.scenario import load_scenario
    from finmlsec.targets.oracle import Oracle

    cls: Any = ATTACKS.get(name)
    kwargs = parse_params(cls, params)
    attack = cls(**kwargs)
    scenario = load_scenario(spec, trust_pickle=trust_pickle)
    data = scenario.attack_data(standard=not strict)
    if data.victims is None and data.test is not None and max_victims > 0:
        # as in a scan: held-out records are the victims (applicants an attacker would turn,
        # the profile a feedback attack targets), those decided against the favourable outcome
        # first; attacks keep those decided against the attacker
        from finmlsec.scan.work import limit_victims

        data = dataclasses.replace(data, victims=limit_victims(data.test, scenario, max_victims))
    oracle = None
    if set(cls.needs) & ORACLE_NEEDS or scenario.target is not None:
        if scenario.target is None:
            raise ConfigError(f"the spec {spec} describes no model (model:), but attack "
                              f"{name!r} queries one")
        oracle = Oracle(scenario.target, access=access or default_access(cls), budget=budget,
                        decimals=decimals, input_kind=scenario.target.input_kind)
    console = Console(stderr=True)
    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                  TextColumn("{task.fields[queries]}"), console=console, transient=True,
                  disable=not (progress and console.is_terminal)) as bar:
        task = bar.add_task(f"{name}", total=None, queries="")

        def report(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total,
                       queries=f"queries {oracle.queries_used}" if oracle else "")

        data = dataclasses.replace(data, extra={**data.extra, "progress": report})
        t0 = time.perf_counter()
        result = attack.run(oracle, data)
        bar.update(task, completed=1, total=1,
                   queries=f"done in {time.perf_counter() - t0:.1f} s")
    return result


def register(app: typer.Typer) -> None:
    @app.command("attack")
    def attack(
        name: str = typer.Argument(..., help="A registered attack (see 'finmlsec attack list'), "
                                             "or 'list'.",
                                   autocompletion=lambda incomplete: ["list", *attack_names(
                                       incomplete)]),
        spec: Path = typer.Option(None, "--spec", help="The system spec (YAML) whose model and "
                                                       "data to attack."),
        budget: int = typer.Option(None, "--budget", min=0, help="Query budget of the oracle."),
        param: list[str] = typer.Option([], "--param", help="Attack parameter k=v (repeatable)."),
        access: str = typer.Option(None, "--access", help="What the attacker sees: proba, "
                                                          "rounded, label or white_box (default: "
                                                          "what the attack needs).",
                                   autocompletion=access_levels),
        decimals: int = typer.Option(2, "--decimals", help="Decimals of --access rounded."),
        strict: bool = typer.Option(False, "--strict", help="Attacker's records never overlap "
                                                            "the training data."),
        victims: int = typer.Option(100, "--victims", min=0, help="Held-out records used as "
                                                                   "victims (evasion, feedback "
                                                                   "loop) when the spec names "
                                                                   "none."),
        trust_pickle: bool = typer.Option(False, "--trust-pickle", help="Load pickle/joblib "
                                                                         "models (executes "
                                                                         "code)."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Run one attack against the spec's target and print its measured result."""
        if name == "list":
            _print_list(as_json)
            return
        from finmlsec.attacks import ATTACKS

        ATTACKS.get(name)  # an unknown name: one line naming the closest and every known one
        if spec is None:
            raise ConfigError("--spec is required to run an attack (give the system spec YAML)")
        if access is not None and access not in access_levels():
            raise ConfigError(f"The '--access' option must be one of {access_levels()}. Got "
                              f"{access!r} instead.")
        result = run_attack(name, spec, budget=budget, params=param, access=access,
                            decimals=decimals, strict=strict, trust_pickle=trust_pickle,
                            progress=not as_json, max_victims=victims)
        if as_json:
            typer.echo(result.to_json())
        else:
            _print_result(result)
