"""A shipped use case's stakes on a bank's own data: its personal fields name the use case's data.

``usecase: credit-scoring`` declares ``age`` and ``credit_amount`` personal (German credit). On a
mortgage file without those columns the analysis would recommend rounding fields that do not
exist and give them as the reason the data is personal; the scan refuses it in one line and the
spec names its own fields in ``stakes`` (merged with the use case's)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bank_files import run_cli
from finmlsec.cli.main import build_app
from finmlsec.errors import SpecError
from finmlsec.scenario import load_scenario
from finmlsec.spec import load_spec
from finmlsec.threatmodel import analyze


def _mortgages(directory: Path) -> Path:
    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame({
        "dir": rng.uniform(0.1, 0.6, n).round(3),
        "lvr": rng.uniform(0.3, 1.2, n).round(3),
        "ccs": rng.integers(1, 7, n),
        "applicant_age": rng.integers(21, 75, n),
    })
    frame["deny"] = np.where(frame["dir"] + 0.2 * frame["lvr"] + rng.normal(0, 0.1, n) > 0.55,
                             "yes", "no")
    path = directory / "mortgages.csv"
    frame.to_csv(path, index=False)
    res = CliRunner().invoke(build_app(), ["schema", "infer", str(path), "--label", "deny",
                                           "--favourable", "no", "-o",
                                           str(directory / "schema.yaml")])
    assert res.exit_code == 0, res.output
    return path


def _spec(directory: Path, stakes: str = "") -> Path:
    p = directory / "spec.yaml"
    p.write_text("usecase: credit-scoring\n"
                 "data: {path: mortgages.csv, label: deny, schema: schema.yaml, seed: 0}\n"
                 + stakes)
    return p


def test_use_case_personal_fields_missing_from_the_data_are_refused(tmp_path: Path) -> None:
    _mortgages(tmp_path)
    spec = _spec(tmp_path)
    with pytest.raises(SpecError, match=r"stakes.personal_fields: 'age', 'credit_amount' are not "
                                        r"fields of the data .*dir, lvr, ccs, applicant_age"):
        load_scenario(spec)
    code, out = run_cli(["scan", str(spec), "--profile", "quick", "--db",
                         str(tmp_path / "s.db")])
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and "stakes: {personal_fields:" in lines[0], out


def test_own_personal_fields_merge_with_the_use_case_stakes(tmp_path: Path) -> None:
    _mortgages(tmp_path)
    spec = _spec(tmp_path, "stakes: {personal_fields: [{field: applicant_age, round_to: 10}]}\n")
    sc = load_scenario(spec)
    loaded = load_spec(spec)
    # the use case's other stakes are kept
    assert loaded.stakes.training_data == "personal" and loaded.stakes.model_value == "high"
    assert [p.field for p in loaded.stakes.personal_fields] == ["applicant_age"]
    text = json.dumps(analyze(loaded).model_dump(mode="json"))
    assert "round applicant_age to the nearest 10" in text and "credit_amount" not in text
    assert sc.schema is not None and "applicant_age" in sc.schema.names
    none = load_spec(_spec(tmp_path, "stakes: {personal_fields: []}\n"))
    assert none.stakes.personal_fields == () and none.stakes.training_data == "personal"
    assert "credit_amount" not in json.dumps(analyze(none).model_dump(mode="json"))
