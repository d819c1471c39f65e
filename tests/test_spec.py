"""The YAML system description: what is accepted, and one clear line for every mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from finmlsec.errors import SpecError
from finmlsec.spec import DataRef, ModelRef, load_spec, parse_spec

MINIMAL = """\
organisations:
  - id: bank
  - id: vendor
  - id: customer
roles:
  training_data_provider: bank      # an id, or a list of ids
  system_user: customer
  model_generator: vendor
  model_operator: bank
"""


def test_minimal_spec_of_the_issue_is_accepted_exactly_as_written() -> None:
    spec = parse_spec(MINIMAL)
    assert [o.id for o in spec.organisations] == ["bank", "vendor", "customer"]
    assert spec.roles.training_data_provider == ("bank",)
    assert spec.roles.system_user == ("customer",)
    assert spec.model is None and spec.data is None
    assert spec.deployed_countermeasures == []
    # the paper's defaults: generator/operator highly secure, the others moderate
    assert spec.effective_security("bank") == "high"
    assert spec.effective_security("vendor") == "high"
    assert spec.effective_security("customer") == "moderate"


def test_contract_sections_model_and_data(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "system.yaml"
    path.parent.mkdir()
    path.write_text(MINIMAL + """\
model:
  format: skops
  path: model.skops
  trusted: false
  trusted_types: []
  input_kind: tabular
  classes: [bad, good]
data:
  dataset: german_credit
  path: null
  schema: schema.yaml
  splits: {train: train.csv, test: test.csv, population: population.csv}
  seed: 0
deployed_countermeasures: [modify_confidence, gateway_rate_limiting]
""")
    spec = load_spec(path)
    assert isinstance(spec.model, ModelRef) and isinstance(spec.data, DataRef)
    assert spec.source_dir == path.parent.resolve()
    assert (spec.source_dir / spec.model.path) == path.parent.resolve() / "model.skops"
    assert spec.model.classes == ["bad", "good"]
    assert spec.data.schema == "schema.yaml"
    assert spec.data.splits is not None and spec.data.splits.population == "population.csv"
    assert spec.deployed_countermeasures == ["modify_confidence", "gateway_rate_limiting"]


def test_remote_and_torch_model_refs() -> None:
    spec = parse_spec(MINIMAL + "model: {format: remote, remote: {url: 'http://127.0.0.1:8000/v1/predict'}}\n")
    assert spec.model is not None and spec.model.remote == {"url": "http://127.0.0.1:8000/v1/predict"}
    spec = parse_spec(MINIMAL + "model: {format: torch, path: m.pt, input_kind: image, torch: {arch: cnn}}\n")
    assert spec.model is not None and spec.model.torch == {"arch": "cnn"}


def test_several_organisations_in_a_role_and_personal_fields_as_names() -> None:
    spec = parse_spec(MINIMAL.replace("training_data_provider: bank", "training_data_provider: [bank, vendor]")
                      + "stakes: {training_data: personal, personal_fields: [age, {field: income, round_to: 1000000}]}\n")
    assert spec.roles.training_data_provider == ("bank", "vendor")
    assert [(p.field, p.round_to) for p in spec.stakes.personal_fields] == [("age", None), ("income", 1e6)]


def test_a_personal_field_is_rounded_or_banded_and_the_scan_generalises_it_so() -> None:
    """``band`` truncates to bands from the field's minimum (weekday/weekend), ``round_to``
    rounds; not both. The scan's Generalise gets them over the schema's defaults (the hour, a
    quasi_identifier, in 6-hour bands)."""
    from types import SimpleNamespace

    from finmlsec.datasets.card_fraud import SCHEMA
    from finmlsec.scan.work import declared_rules
    from finmlsec.threatmodel.analysis import analyze

    spec = parse_spec(MINIMAL + "stakes: {training_data: personal, personal_fields: [{field: customer_age, "
                      "round_to: 10}, {field: day_of_week, band: 5}]}\n")
    assert [(p.field, p.round_to, p.band) for p in spec.stakes.personal_fields] == [
        ("customer_age", 10, None), ("day_of_week", None, 5)]
    rules = declared_rules(SimpleNamespace(spec=spec, schema=SCHEMA, train=None))
    assert rules == {"hour": "band:6", "day_of_week": "band:5", "customer_age": 10.0}
    measures = [m for t in analyze(spec).threats for m in t.measures]
    assert "truncate day_of_week to bands of 5" in measures, measures
    assert "band" in _error(MINIMAL + "stakes: {personal_fields: [{field: hour, band: 6, round_to: 2}]}\n")


def _error(text: str) -> str:
    with pytest.raises(SpecError) as info:
        parse_spec(text, source="s.yaml")
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    "text, expected",
    [
        # malformed YAML
        ("organisations: [{id: bank}\n", ["s.yaml", "malformed YAML at line 2", "fix the YAML syntax"]),
        ("- just\n- a list\n", ["top level must be a mapping"]),
        ("", ["got an empty document"]),
        # unknown keys, with the nearest known key
        (MINIMAL.replace("  - id: vendor", "  - id: vendor\n    securty: high"),
         ["organisations[1].securty (line 4)", "did you mean 'security'?"]),
        (MINIMAL + "stake: {model_value: high}\n", ["stake (line 10)", "did you mean 'stakes'?"]),
        (MINIMAL.replace("model_operator: bank", "model_operater: bank"),
         ["roles.model_operater", "did you mean 'model_operator'?"]),
        # a role without an organisation
        (MINIMAL.replace("  system_user: customer\n", ""), ["roles.system_user", "has no organisation"]),
        (MINIMAL.replace("system_user: customer", "system_user:"), ["roles.system_user (line 7)", "no organisation"]),
        (MINIMAL.replace("system_user: customer", "system_user: []"), ["roles.system_user", "at least one"]),
        # an organisation id used but not declared
        (MINIMAL.replace("system_user: customer", "system_user: custmer"),
         ["roles.system_user (line 7)", "'custmer' is not declared", "did you mean 'customer'?"]),
        (MINIMAL.replace("training_data_provider: bank ", "training_data_provider: [bank, telco] "),
         ["roles.training_data_provider[1]", "'telco' is not declared"]),
        # duplicate ids and keys
        (MINIMAL.replace("- id: vendor", "- id: bank"), ["organisations[1].id (line 3)", "duplicate organisation id 'bank'"]),
        (MINIMAL + "stakes: {model_value: high, model_value: low}\n", ["duplicate key 'model_value'"]),
        (MINIMAL.replace("system_user: customer", "system_user: [customer, customer]"), ["roles.system_user[1]", "listed twice"]),
        # wrong enum values
        (MINIMAL.replace("  - id: vendor", "  - id: vendor\n    security: hi"),
         ["organisations[1].security", "'hi' is not allowed", "'high', 'moderate'"]),
        (MINIMAL + "stakes: {training_data: secret}\n", ["stakes.training_data", "'secret'", "'personal'"]),
        (MINIMAL + "model: {format: h5, path: m.h5}\n", ["model.format", "'h5' is not allowed"]),
        (MINIMAL + "deployed_countermeasures: [pat]\n", ["deployed_countermeasures[0]", "did you mean 'pate'?"]),
        # inconsistent sections
        (MINIMAL + "model: {format: skops}\n", ["model (line 10)", "needs a 'path'"]),
        (MINIMAL + "data: {path: d.csv}\n", ["data", "needs 'label'"]),
        (MINIMAL + "roles2: 1\n", ["unknown key 'roles2'", "did you mean 'roles'?"]),
        (MINIMAL.replace("model_operator: bank", "model_operator: bank\n  training_data_assembler: vendor"),
         ["roles.training_data_assembler", "not a training-data provider"]),
        (MINIMAL + "source_dir: /etc\n", ["unknown key 'source_dir'"]),
        (MINIMAL.replace("- id: customer", "- id: 'cust omer'"), ["organisations[2].id", "should match pattern"]),
        # wrong shapes
        ("organisations: bank\nroles: {}\n", ["organisations (line 1)", "should be a list"]),
        (MINIMAL.replace("  - id: bank\n", "  - bank\n"), ["organisations[0] (line 2)", "{id: bank}"]),
        (MINIMAL.replace("system_user: customer", "system_user: 5"), ["roles.system_user", "an organisation id or a list of ids; got 5"]),
        (MINIMAL + "stakes: {acceptable_loss: -1}\n", ["stakes.acceptable_loss", "greater than or equal to 0; got -1"]),
        (MINIMAL + "deployed_countermeasures: pate\n", ["deployed_countermeasures", "should be a list"]),
        (MINIMAL + "model: {format: skops, path: 3}\n", ["model.path", "should be a text string"]),
    ],
)
def test_bad_input_names_the_yaml_path_and_what_to_do(text: str, expected: list[str]) -> None:
    message = _error(text)
    assert message.startswith("s.yaml")
    for fragment in expected:
        assert fragment in message, message


def test_missing_file() -> None:
    with pytest.raises(SpecError, match="file not found"):
        load_spec("/nonexistent/system.yaml")


def test_spec_is_frozen() -> None:
    spec = parse_spec(MINIMAL)
    with pytest.raises(Exception):  # noqa: B017  (pydantic's ValidationError for frozen models)
        spec.name = "changed"  # type: ignore[misc]


def test_examples_in_docs_spec_md_are_valid() -> None:
    import re

    doc = (Path(__file__).resolve().parents[1] / "docs" / "spec.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", doc, re.S)
    assert len(blocks) == 2
    minimal, complete = (parse_spec(b, source="docs/spec.md") for b in blocks)
    assert minimal.roles.model_operator == ("bank",)
    assert complete.roles.training_data_assembler == "it_provider"
    assert complete.model is not None and complete.data is not None
    assert [p.field for p in complete.stakes.personal_fields] == ["age", "income", "credit_amount"]
    for line in re.findall(r"^error: (.*)$", doc, re.M):  # the documented messages are real
        text = MINIMAL.replace("system_user: customer", "system_user: custmer") if "custmer" in line else (
            MINIMAL.replace("  - id: vendor", "  - id: vendor\n    securty: high") if "securty" in line
            else MINIMAL + "stakes: {training_data: secret}\n")
        assert str(pytest.raises(SpecError, parse_spec, text, source="system.yaml").value) == line
