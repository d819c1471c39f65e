"""A user's own CSV and pipeline: schema inference, dtypes as trained, derived fields."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from finmlsec.datasets.schema_infer import infer_schema, to_yaml
from finmlsec.schema import FeatureSchema
from messy_loans import SCHEMA, build_messy_system
from scan_support import finmlsec


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_messy_system(tmp_path_factory.mktemp("loans"))


def test_inference_reads_text_missing_values_and_codes(system: dict[str, Path]) -> None:
    frame = pd.read_csv(system["data"])
    inf = infer_schema(frame.drop(columns=["decision"]), y=frame["decision"], label="decision",
                       favourable="approve")
    s = inf.schema
    assert s["emp_title"].type == "text" and s["emp_title"].immutable and s["emp_title"].nullable
    assert "high-cardinality" in inf.notes["emp_title"]
    assert s["annual_income"].nullable and not s["loan_amount"].nullable
    assert s["purpose"].dtype == "int64" and "possible category" in inf.notes["purpose"]
    assert s["age"].personal and s["age"].immutable and s["sex"].immutable
    assert s.favourable_class == "approve" and s.positive_class == "reject"
    assert s.classes == ("approve", "reject")
    s.check(frame.drop(columns=["decision"]))  # the data satisfies its own inferred schema
    back = FeatureSchema.model_validate(yaml.safe_load(to_yaml(inf)))
    assert back == s


def test_schema_infer_command_writes_a_schema_the_scan_loads(system: dict[str, Path],
                                                              tmp_path: Path) -> None:
    from finmlsec.scenario import load_scenario

    d = system["data"].parent
    out = finmlsec("schema", "infer", "loans.csv", "--label", "decision", "--favourable",
                   "approve", "-o", "inferred.yaml", cwd=d)
    assert out.returncode == 0, out.stderr
    text = (d / "inferred.yaml").read_text()
    assert "# emp_title:" in text and "nullable: true" in text
    spec = d / "spec_inferred.yaml"
    spec.write_text(system["spec"].read_text().replace("schema: schema.yaml",
                                                       "schema: inferred.yaml"))
    sc = load_scenario(spec)
    assert sc.schema is not None and sc.schema.favourable_class == "approve"
    bad = finmlsec("schema", "infer", "loans.csv", "--label", "nope", cwd=d)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "no label column 'nope'" in bad.stderr


def test_a_spec_without_schema_loads(system: dict[str, Path], tmp_path: Path) -> None:
    """The schema is inferred (text columns stay text under pandas 3's string dtype)."""
    from finmlsec.scenario import load_scenario

    spec = system["spec"].parent / "spec_noschema.yaml"
    spec.write_text(system["spec"].read_text().replace("  schema: schema.yaml\n", ""))
    sc = load_scenario(spec)
    assert sc.schema is not None and sc.schema["emp_title"].type == "text"


@pytest.mark.parametrize("key", ["spec", "spec_onnx"])
def test_integer_codes_declared_categorical_reach_the_model_as_integers(
        system: dict[str, Path], key: str) -> None:
    """The schema calls the codes categories (held as text by the scan); the model was trained
    on integers and must still get integers, with or without a declared dtype."""
    from finmlsec.scan.work import utility
    from finmlsec.scenario import load_scenario

    d = system["spec"].parent
    (d / "schema_nodtype.yaml").write_text(
        "\n".join(ln.replace(", dtype: int64", "") for ln in SCHEMA.splitlines()) + "\n")
    spec = d / f"{key}_nodtype.yaml"
    spec.write_text(system[key].read_text().replace("schema.yaml", "schema_nodtype.yaml"))
    sc = load_scenario(spec)
    assert sc.schema is not None and sc.schema["purpose"].type == "categorical"
    assert sc.test is not None and isinstance(sc.test.X["purpose"].iloc[0], str)
    raw = pd.read_csv(system["test"])
    import skops.io as sio

    model = sio.load(system["model"], trusted=["numpy.dtype"])
    direct = float(np.mean(model.predict(raw.drop(columns=["decision"])) == raw["decision"]))
    assert utility(sc.target, sc.test)["accuracy"] == pytest.approx(direct)


def test_derived_field_consistency_is_checked_and_recomputed(system: dict[str, Path]) -> None:
    schema = FeatureSchema.model_validate(yaml.safe_load(SCHEMA))
    X = pd.read_csv(system["test"]).drop(columns=["decision"])
    X["purpose"] = X["purpose"].astype(str)
    X["home_ownership"] = X["home_ownership"].astype(str)
    X["sex"] = X["sex"].astype(str)
    assert schema.is_valid(X).all()
    moved = X.copy()
    moved["monthly_debt"] = moved["monthly_debt"] / 2
    ok = schema.is_valid(moved)
    assert not ok[X["annual_income"].notna().to_numpy()].any()  # the ratio no longer agrees
    assert ok[X["annual_income"].isna().to_numpy()].all()  # missing stays missing: consistent
    assert schema.is_valid(schema.derive(moved)).all()


def test_coded_missing_markers_are_flagged_for_review() -> None:
    """Real exports write a missing value as a code ('emp_unk', 'ignore'): schema infer says so,
    never silently; ordinary codes are not flagged."""
    rng = np.random.default_rng(0)
    n = 200
    frame = pd.DataFrame({
        "emp_length": rng.choice(["emp_1", "emp_5", "emp_ge_10", "emp_unk"], n),
        "home": rng.choice(["owner", "rent", "ignore"], n),
        "term": rng.choice(["term_36", "term_60"], n),
        "y": rng.choice(["good", "bad"], n),
    })
    notes = infer_schema(frame, label="y").notes
    assert "'emp_unk' in" in notes["emp_length"] and "missing-value marker" in notes["emp_length"]
    assert "'ignore' in" in notes["home"]
    assert "missing-value marker" not in notes.get("term", "")


def test_free_text_ending_in_a_marker_word_is_not_taken_for_a_missing_marker() -> None:
    """A job title is free text: 'senior vp operations na' (North America) ends in the word
    'na' but is a title, not a code; codes ('emp_unk', 'status unknown') are still flagged."""
    rng = np.random.default_rng(0)
    n = 300
    titles = [f"title {k}" for k in range(120)] + ["senior vp contact center operations na",
                                                   "regional director none"]
    frame = pd.DataFrame({
        "emp_title": rng.choice(titles, n),
        "status": rng.choice(["active", "closed", "status unknown"], n),
        "y": rng.choice(["good", "bad"], n),
    })
    frame.loc[:1, "emp_title"] = ["senior vp contact center operations na",
                                  "regional director none"]
    notes = infer_schema(frame, label="y").notes
    assert "missing-value marker" not in notes.get("emp_title", "")
    assert "'status unknown' in" in notes["status"]


def test_codes_with_a_stray_imputed_mean_are_flagged() -> None:
    """A credit-history code 1-6 stored as float with one mean imputed for a missing code (as
    in a public mortgage file): not whole, so not flagged as integer codes before."""
    rng = np.random.default_rng(0)
    codes = rng.integers(1, 7, 500).astype(float)
    codes[17] = 2.11638655462185
    frame = pd.DataFrame({"ccs": codes, "dir": rng.uniform(0, 1, 500)})
    inf = infer_schema(frame, y=pd.Series(rng.integers(0, 2, 500)), label="deny")
    assert inf.schema["ccs"].type == "numeric"  # the model was trained on floats
    assert "possible category: 6 whole levels and 1 value(s)" in inf.notes["ccs"]
    assert "2.11639" in inf.notes["ccs"] and "possible category" not in inf.notes["dir"]
