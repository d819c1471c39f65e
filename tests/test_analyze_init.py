"""``finmlsec init``: a valid spec from the questionnaire or from flags."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from finmlsec.cli.main import build_app, main
from finmlsec.spec import load_spec
from finmlsec.threatmodel import analyze


def run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_non_interactive_flags_write_a_valid_type_3_spec(tmp_path: Path) -> None:
    out = tmp_path / "credit.yaml"
    assert run(["init", "-o", str(out), "--no-input", "--name", "Scoring",
          "--training-data-provider", "bank,it", "--assembler", "it", "--system-user", "customer",
          "--model-generator", "it", "--model-operator", "bank", "--training-data", "personal",
          "--personal-field", "age=10", "--personal-field", "income=1000000",
          "--model-value", "high", "--deployed", "modify_confidence"]) == 0
    spec = load_spec(out)
    assert spec.name == "Scoring"
    assert spec.roles.training_data_provider == ("bank", "it")
    assert [(p.field, p.round_to) for p in spec.stakes.personal_fields] == [("age", 10), ("income", 1e6)]
    assert spec.deployed_countermeasures == ["modify_confidence"]
    assert analyze(spec).type == 3


def test_questionnaire(tmp_path: Path) -> None:
    out = tmp_path / "office.yaml"
    answers = "\n".join([
        "OCR via MLaaS",       # name
        "bank, vendor",        # organisations
        "bank",                # training-data provider
        "bank",                # system user
        "vendr",               # model generator: a typo is asked again
        "vendor",
        "vendor",              # model operator
        "",                    # security of bank: default (moderate)
        "",                    # security of vendor: default (high)
        "secret",              # confidentiality: not a choice, asked again
        "confidential",
        "negligible",          # model value
        "high",                # harm of a wrong output
        "",                    # harm of an outage: default
        "",                    # risk appetite: default
        "gateway_rate_limiting",
    ]) + "\n"
    result = CliRunner().invoke(build_app(), ["init", "-o", str(out)], input=answers)
    assert result.exit_code == 0, result.output
    assert "type 7" in result.output
    spec = load_spec(out)
    assert spec.stakes.training_data == "confidential" and spec.stakes.model_value == "negligible"
    assert spec.deployed_countermeasures == ["gateway_rate_limiting"]
    assert all(o.security is None for o in spec.organisations)  # defaults are not written


def test_missing_role_without_input_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["init", "-o", str(tmp_path / "x.yaml"), "--no-input", "--system-user", "a"])
    assert info.value.code == 2
    assert "--training-data-provider" in capsys.readouterr().err


def test_refuses_to_overwrite_and_rejects_bad_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.yaml"
    out.write_text("keep me")
    base = ["init", "-o", str(out), "--no-input", "--training-data-provider", "a", "--system-user", "a",
            "--model-generator", "b", "--model-operator", "b"]
    with pytest.raises(SystemExit):
        main(base)
    assert "--force" in capsys.readouterr().err and out.read_text() == "keep me"
    with pytest.raises(SystemExit) as info:
        main([*base, "--force", "--model-value", "huge"])
    assert info.value.code == 2
    assert "stakes.model_value" in capsys.readouterr().err and out.read_text() == "keep me"
    with pytest.raises(SystemExit) as info:  # an excluded partition: SU and MG together, MO elsewhere
        main(["init", "-o", str(tmp_path / "y.yaml"), "--no-input", "--training-data-provider", "a",
              "--system-user", "b", "--model-generator", "b", "--model-operator", "c"])
    assert info.value.code == 2
    assert "not realistically deployable" in capsys.readouterr().err


def test_an_excluded_partition_is_caught_right_after_the_role_questions(tmp_path: Path) -> None:
    out = tmp_path / "s.yaml"
    answers = "\n".join([
        "Loans",               # name
        "bank, vendor",        # organisations
        "bank",                # training-data provider
        "vendor",              # system user
        "vendor",              # model generator: SU and MG together ...
        "bank",                # model operator: ... MO elsewhere: excluded, asked again at once
        "bank",                # training-data provider
        "bank",                # system user
        "vendor",              # model generator
        "vendor",              # model operator
        "", "",                # security levels
        "confidential", "", "", "", "",
        "pat",                 # an unknown countermeasure: asked again, not discarded at the end
        "gateway_rate_limiting",
    ]) + "\n"
    result = CliRunner().invoke(build_app(), ["init", "-o", str(out)], input=answers)
    assert result.exit_code == 0, result.output
    text = result.output
    excluded = text.index("excluded")
    assert excluded < text.index("Security level of bank")  # before any later question
    assert "did you mean 'pate'?" in text
    spec = load_spec(out)
    assert list(spec.roles.system_user) == ["bank"] and spec.deployed_countermeasures == [
        "gateway_rate_limiting"]


def test_an_excluded_partition_from_flags_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["init", "--no-input", "-o", str(tmp_path / "s.yaml"), "--training-data-provider",
              "bank", "--system-user", "vendor", "--model-generator", "vendor",
              "--model-operator", "bank"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "excluded" in err and len(err.strip().splitlines()) == 1
