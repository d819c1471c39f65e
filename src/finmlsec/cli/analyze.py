"""``finmlsec analyze``, ``finmlsec types`` and ``finmlsec init``."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import typer

from finmlsec.errors import ConfigError


def _write(text: str, output: Path | None) -> None:
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {str(output)!r} ({exc.strerror}); choose another -o path") from None
    typer.echo(f"wrote {output}", err=True)


def analyze_command(
    spec: Path = typer.Argument(..., help="The YAML system description (see docs/spec.md)."),
    fmt: str = typer.Option("md", "--format", "-f", help="html, md or json."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write here instead of stdout."),
) -> None:
    """Derive the paper's type, attacker reach, threats, countermeasures and risk decisions."""
    from finmlsec.report.analysis import FORMATS, render_analysis
    from finmlsec.spec import load_spec
    from finmlsec.threatmodel import analyze

    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    from finmlsec.errors import SpecError

    system = load_spec(spec)
    try:
        result = analyze(system)
    except SpecError as exc:  # e.g. an excluded partition: name the file too
        raise SpecError(str(exc), str(spec)) from None
    _write(render_analysis(result, fmt), output)


def types_command(
    fmt: str = typer.Option("text", "--format", "-f", help="text or json."),
) -> None:
    """Print the paper's 12 system types (and the 3 excluded partitions)."""
    from finmlsec.threatmodel import EXCLUDED, type_table
    from finmlsec.threatmodel.types import describe_pattern

    rows = type_table()
    excluded = [{"partition": describe_pattern(p), "reason": r} for p, r in EXCLUDED.items()]
    if fmt == "json":
        typer.echo(json.dumps({"types": rows, "excluded": excluded}, indent=2))
        return
    if fmt != "text":
        raise ConfigError(f"--format must be text or json; got {fmt!r}")
    typer.echo("type  TDP SU  MG  MO  orgs  attacker can reach")
    for row in rows:
        pat = row["pattern"]
        assert isinstance(pat, dict)
        letters = "  ".join(f"{v:<2}" for v in pat.values())
        reach = ", ".join(row["reach"]) or "none"  # type: ignore[arg-type]
        typer.echo(f"{row['type']:>4}  {letters}  {row['organisations']:>4}  {reach}")
    typer.echo("")
    typer.echo("Letters name organisations. Excluded partitions (not realistically deployable):")
    for item in excluded:
        typer.echo(f"  {item['partition']}")
    typer.echo(f"  reason: {excluded[0]['reason']}")


_LEVELS = ("negligible", "low", "moderate", "high")
_CONF = ("public", "internal", "confidential", "personal")
_QUESTIONS = {
    "training_data_provider": "Which organisation(s) provide the training data",
    "system_user": "Which organisation(s) use the system (send inputs, receive outputs)",
    "model_generator": "Which organisation generates (trains) the model",
    "model_operator": "Which organisation operates the model (runs predictions)",
}


def _ask_ids(question: str, known: list[str] | None) -> list[str]:
    from finmlsec.spec.build import parse_ids

    while True:
        hint = f" [{'/'.join(known)}]" if known else ""
        ids = parse_ids(typer.prompt(f"{question}{hint}"))
        unknown = [i for i in ids if known is not None and i not in known]
        if ids and not unknown:
            return ids
        typer.echo(f"  answer with one or more of: {', '.join(known or [])}", err=True)


def _partition_problem(orgs: list[str], roles: dict[str, list[str]]) -> str | None:
    """Why these roles cannot make a system (an excluded partition, an unknown id), or None."""
    from finmlsec.errors import SpecError
    from finmlsec.spec import validate_spec
    from finmlsec.spec.build import spec_from_answers
    from finmlsec.threatmodel import analyze

    try:
        analyze(validate_spec(spec_from_answers(organisations=orgs, roles=roles),
                              source="answers"))
    except SpecError as exc:
        return str(exc).removeprefix("answers: ")
    return None


def _countermeasure_ids(answer: str) -> list[str]:
    from finmlsec.errors import SpecError
    from finmlsec.spec.build import parse_ids
    from finmlsec.threatmodel.catalogue import COUNTERMEASURE_IDS

    ids = parse_ids(answer)
    unknown = [i for i in ids if i not in COUNTERMEASURE_IDS]
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(COUNTERMEASURE_IDS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SpecError(f"unknown countermeasure {unknown[0]!r}{hint}; choose from: "
                        f"{', '.join(COUNTERMEASURE_IDS)}")
    return ids


def _ask_until(question: str, parse: Any) -> Any:
    """Ask ``question`` until ``parse(answer)`` accepts it (a SpecError says why, then again)."""
    from finmlsec.errors import SpecError

    while True:
        answer = typer.prompt(question, default="", show_default=False)
        try:
            return parse(answer)
        except SpecError as exc:
            typer.echo(f"  {exc}; answer again", err=True)


def _choice(question: str, choices: tuple[str, ...], default: str) -> str:
    while True:
        value = str(typer.prompt(f"{question} ({'/'.join(choices)})", default=default)).strip()
        if value in choices:
            return value
        typer.echo(f"  answer one of: {', '.join(choices)}", err=True)


def init_command(
    output: Path = typer.Option(Path("system.yaml"), "--output", "-o", help="Spec file to write."),
    name: str | None = typer.Option(None, help="Name of the system."),
    organisations: str | None = typer.Option(None, "--organisations", help="Ids, comma-separated."),
    tdp: str | None = typer.Option(None, "--training-data-provider", help="Id(s), comma-separated."),
    su: str | None = typer.Option(None, "--system-user", help="Id(s), comma-separated."),
    mg: str | None = typer.Option(None, "--model-generator", help="Id(s), comma-separated."),
    mo: str | None = typer.Option(None, "--model-operator", help="Id(s), comma-separated."),
    assembler: str | None = typer.Option(None, help="The provider that assembles the training data."),
    security: list[str] = typer.Option([], help="ORG=high|moderate (repeatable)."),
    training_data: str | None = typer.Option(None, help="public, internal, confidential, personal."),
    personal_field: list[str] = typer.Option([], help="FIELD or FIELD=STEP, e.g. age=10 (repeatable)."),
    model_value: str | None = typer.Option(None, help="negligible, low, moderate, high."),
    harm: str | None = typer.Option(None, "--harm-of-wrong-output", help="negligible ... high."),
    outage: str | None = typer.Option(None, "--harm-of-outage", help="negligible ... high."),
    appetite: str | None = typer.Option(None, "--risk-appetite", help="Highest level accepted."),
    deployed: list[str] = typer.Option([], help="A countermeasure id already deployed (repeatable)."),
    no_input: bool = typer.Option(False, "--no-input", help="Never prompt; use flags and defaults."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write a valid system description from a questionnaire (or from flags with --no-input)."""
    from finmlsec.errors import SpecError
    from finmlsec.ids import ROLES
    from finmlsec.spec import validate_spec
    from finmlsec.spec.build import parse_ids, parse_personal_field, spec_from_answers, to_yaml
    from finmlsec.threatmodel import analyze

    if output.exists() and not force:
        raise ConfigError(f"{str(output)!r} exists; pass --force to overwrite or choose another -o")
    ask = not no_input
    given = {"training_data_provider": tdp, "system_user": su, "model_generator": mg,
             "model_operator": mo}
    if name is None and ask:
        name = typer.prompt("Name of the system", default="My ML system")
    orgs = parse_ids(organisations) if organisations else []
    if not orgs and ask:
        orgs = _ask_ids("Organisations taking part (ids, comma-separated, e.g. bank, vendor)", None)
    while True:  # the role partition is checked as soon as the roles are known
        roles: dict[str, list[str]] = {}
        for role in ROLES:
            value = given[role]
            if value:
                roles[role] = parse_ids(value)
            elif ask:
                roles[role] = _ask_ids(_QUESTIONS[role], orgs)
            else:
                raise SpecError(f"the role {role!r} has no organisation; pass "
                                f"--{role.replace('_', '-')} ID", f"roles.{role}")
        used = orgs or parse_ids(",".join(i for role in ROLES for i in roles[role]))
        problem = _partition_problem(used, roles)
        if problem is None:
            orgs = used
            break
        if not ask or all(given.values()):
            raise SpecError(problem, "roles")
        typer.echo(f"  {problem}; answer the role questions again", err=True)
        given = {r: None for r in given}
    if assembler is None and len(roles["training_data_provider"]) > 1 and ask:
        assembler = _ask_ids("Which provider assembles the training data",
                             roles["training_data_provider"])[0]
    levels: dict[str, str] = {}
    for item in security:
        org, _, level = item.partition("=")
        levels[org.strip()] = level.strip()
    if ask:
        secure_roles = {"model_generator", "model_operator"}
        for org in orgs:
            if org in levels:
                continue
            default = "high" if any(org in roles[r] for r in secure_roles) else "moderate"
            level = _choice(f"Security level of {org}", ("high", "moderate"), default)
            if level != default:
                levels[org] = level
    if training_data is None and ask:
        training_data = _choice("Confidentiality of the training data", _CONF, "confidential")
    fields = [parse_personal_field(f) for f in personal_field]
    if not fields and ask and training_data == "personal":
        fields = _ask_until("Personal number fields and rounding steps (e.g. age=10, "
                            "income=1000000; empty for none)",
                            lambda answer: [parse_personal_field(f) for f in parse_ids(answer)])
    if ask:
        model_value = model_value or _choice("Value of the model", _LEVELS, "moderate")
        harm = harm or _choice("Harm of a wrong output", _LEVELS, "moderate")
        outage = outage or _choice("Harm of an outage", _LEVELS, "moderate")
        appetite = appetite or _choice("Risk appetite (highest risk accepted)", _LEVELS, "low")
        if not deployed:
            deployed = _ask_until("Countermeasures already deployed (ids, comma-separated; "
                                  "empty for none)", _countermeasure_ids)
    data = spec_from_answers(
        name=name, organisations=orgs, roles=roles, assembler=assembler, security=levels,
        training_data=training_data, personal_fields=fields, model_value=model_value,
        harm_of_wrong_output=harm, harm_of_outage=outage, risk_appetite=appetite,
        deployed=deployed,
    )
    spec = validate_spec(data, source=str(output), base_dir=output.resolve().parent)
    try:
        result = analyze(spec)
    except SpecError as exc:
        raise SpecError(str(exc), "answers") from None
    _write(to_yaml(data), output)
    kind = f"type {result.type}" if result.type is not None else (
        f"no paper type (nearest: {', '.join(map(str, result.nearest_types))})")
    typer.echo(f"{output}: {kind}; next: finmlsec analyze {output} --format html -o analysis.html")


def register(app: typer.Typer) -> None:
    app.command("analyze")(analyze_command)
    app.command("types")(types_command)
    app.command("init")(init_command)
