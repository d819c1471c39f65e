"""load_scenario: target + data + splits from a spec; attack data; clear errors for bad data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from finmlsec.datasets import load
from finmlsec.datasets.splits import split_three, write_split
from finmlsec.errors import DataError, SpecError, TargetError
from finmlsec.scenario import load_scenario
from finmlsec.schema import preprocessor
from finmlsec.spec import parse_spec

HEAD = """
organisations: [{id: bank}, {id: it_provider}, {id: customer}]
roles: {training_data_provider: [bank, it_provider], training_data_assembler: it_provider,
        system_user: customer, model_generator: it_provider, model_operator: bank}
"""


def _spec(tmp: Path, body: dict) -> Path:
    path = tmp / "spec.yaml"
    path.write_text(HEAD + yaml.safe_dump(body), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def credit_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("credit")
    ds = load("german_credit")
    train, test, pop = split_three(ds, 0)
    model = make_pipeline(preprocessor(ds.schema, categories="data"),
                          LogisticRegression(max_iter=1000)).fit(train.X, train.y)
    sio.dump(model, d / "model.skops")
    for role, part in [("train", train), ("test", test), ("population", pop)]:
        write_split(part, d / f"{role}.csv")
    return d


SPLITS = {"train": "train.csv", "test": "test.csv", "population": "population.csv"}
MODEL = {"format": "skops", "path": "model.skops"}


def test_scenario_from_split_files(credit_dir: Path) -> None:
    sc = load_scenario(_spec(credit_dir, {"model": MODEL, "data": {"dataset": "german_credit",
                                                                   "splits": SPLITS}}))
    assert (len(sc.train), len(sc.test), len(sc.population)) == (500, 250, 250)
    assert sc.schema is not None and sc.schema.target == "creditability"
    assert sc.target is not None and sc.target.classes_.tolist() == [0, 1]
    # the split files round-trip exactly
    _, test, _ = split_three(load("german_credit"), 0)
    pd.testing.assert_frame_equal(sc.test.X, test.X, check_dtype=False)
    assert sc.test.y.tolist() == test.y.tolist()
    # the model factory gives an unfitted clone that trains like the target
    fresh = sc.model_factory()
    assert not hasattr(fresh, "classes_")
    fresh.fit(sc.train.X, sc.train.y)
    np.testing.assert_allclose(fresh.predict_proba(sc.test.X), sc.target.predict_proba(sc.test.X))


def _keys(X: pd.DataFrame) -> set[str]:
    return set(X.astype(str).agg("|".join, axis=1))


def test_attack_data_standard_and_strict(credit_dir: Path) -> None:
    sc = load_scenario(_spec(credit_dir, {"model": MODEL, "data": {"dataset": "german_credit",
                                                                   "splits": SPLITS}}))
    std = sc.attack_data(standard=True)
    strict = sc.attack_data(standard=False)
    train_keys, pop_keys, test_keys = _keys(sc.train.X), _keys(sc.population.X), _keys(sc.test.X)
    # standard: the pool holds every member and every population record, shuffled
    assert _keys(std.population.X) == train_keys | pop_keys
    assert len(std.population) == 750
    assert std.population.X.iloc[:500].pipe(_keys) != train_keys  # not in split order
    assert _keys(std.nonmembers.X) == pop_keys and _keys(std.members.X) == train_keys
    # strict: the pool is disjoint from the members; nonmembers are the held-out test split
    assert _keys(strict.population.X) == pop_keys and not (pop_keys & train_keys)
    assert _keys(strict.nonmembers.X) == test_keys
    for data in (std, strict):
        assert data.schema is sc.schema and data.model_factory is sc.model_factory
        assert len(data.test) == 250 and len(data.train) == 500
        assert data.endpoint is None
    assert std.extra["threat_model"] == "standard" and strict.extra["threat_model"] == "strict"


def test_without_split_files_the_dataset_is_split_as_demo_build_does() -> None:
    spec = parse_spec(HEAD + "data: {dataset: bank_intents, seed: 3}")
    sc = load_scenario(spec)
    train, test, pop = split_three(load("bank_intents"), 3)
    assert sc.train.X == train.X and sc.population.X == pop.X and sc.target is None
    assert sc.model_factory is None
    data = sc.attack_data()
    assert len(data.population) == len(train) + len(pop)
    assert sorted(data.population.X) == sorted(list(train.X) + list(pop.X))


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda f: f.drop(columns=["age"]), r"data.splits.train .*missing column\(s\) \['age'\]"),
        (lambda f: f.assign(age=["old"] * len(f)), r"column 'age': expected integer"),
        (lambda f: f.assign(duration_months=[np.nan] + [12] * (len(f) - 1)),
         r"column 'duration_months': 1 missing value"),
        (lambda f: f.assign(purpose=["spaceship"] * len(f)), r"not among the categories"),
        (lambda f: f.assign(creditability=["maybe"] * len(f)),
         r"label\(s\) \['maybe'\] are not among the classes \['bad', 'good'\]"),
        (lambda f: f.drop(columns=["creditability"]), r"no label column 'creditability'"),
    ],
    ids=["missing-column", "wrong-type", "nan", "bad-category", "bad-label", "no-label"],
)
def test_bad_split_data_gets_clear_errors(credit_dir: Path, tmp_path: Path, mutate, message) -> None:
    frame = pd.read_csv(credit_dir / "train.csv")
    mutate(frame).to_csv(tmp_path / "train.csv", index=False)
    spec = _spec(tmp_path, {"data": {"dataset": "german_credit", "splits": {"train": "train.csv"}}})
    with pytest.raises(DataError, match=message):
        load_scenario(spec)


def test_csv_data_with_schema_file(credit_dir: Path, tmp_path: Path) -> None:
    ds = load("german_credit")
    frame = ds.X.copy()
    frame["outcome"] = np.array(ds.classes)[ds.y]
    frame.to_csv(tmp_path / "loans.csv", index=False)
    (tmp_path / "schema.yaml").write_text(
        yaml.safe_dump(json.loads(ds.schema.model_dump_json())), encoding="utf-8")
    spec = _spec(tmp_path, {"data": {"path": "loans.csv", "label": "outcome",
                                     "schema": "schema.yaml"}})
    sc = load_scenario(spec)
    assert sc.dataset.classes == ("bad", "good") and len(sc.train) == 500
    assert sc.dataset.y.tolist() == ds.y.tolist()
    frame.loc[3, "credit_amount"] = -5
    frame.to_csv(tmp_path / "loans.csv", index=False)
    with pytest.raises(DataError, match=r"data.path .*'credit_amount'.*below the minimum"):
        load_scenario(spec)
    (tmp_path / "schema.yaml").write_text("features: [{name: x}]", encoding="utf-8")
    with pytest.raises(SpecError, match="invalid feature schema"):
        load_scenario(spec)
    spec = _spec(tmp_path, {"data": {"path": "loans.csv", "label": "nope"}})
    with pytest.raises(DataError, match="no label column 'nope'"):
        load_scenario(spec)


def test_text_and_image_split_files_are_validated(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text('{"text": "hi", "label": "check_balance"}\n[1, 2]\n')
    spec = _spec(tmp_path, {"data": {"dataset": "bank_intents", "splits": {"train": "train.jsonl"}}})
    with pytest.raises(DataError, match="line 2 is not an object"):
        load_scenario(spec)
    np.savez(tmp_path / "train.npz", X=np.full((3, 64), np.nan), y=np.zeros(3, dtype=int))
    spec = _spec(tmp_path, {"data": {"dataset": "ocr_digits", "splits": {"train": "train.npz"}}})
    with pytest.raises(DataError, match="NaN or infinite"):
        load_scenario(spec)
    np.savez(tmp_path / "train.npz", X=np.full((3, 64), 3.0), y=np.zeros(3, dtype=int))
    with pytest.raises(DataError, match="above the maximum"):
        load_scenario(spec)
    np.savez(tmp_path / "train.npz", pixels=np.zeros((3, 64)))
    with pytest.raises(DataError, match="must hold arrays 'X' and 'y'"):
        load_scenario(spec)
    spec = _spec(tmp_path, {"data": {"dataset": "ocr_digits", "splits": {"train": "gone.npz"}}})
    with pytest.raises(DataError, match="file not found"):
        load_scenario(spec)


def test_model_that_cannot_read_the_data(credit_dir: Path, tmp_path: Path) -> None:
    X = np.random.default_rng(0).normal(size=(50, 3))
    sio.dump(LogisticRegression().fit(X, (X[:, 0] > 0).astype(int)), tmp_path / "m.skops")
    for name in SPLITS.values():
        (tmp_path / name).write_bytes((credit_dir / name).read_bytes())
    spec = _spec(tmp_path, {"model": {"format": "skops", "path": "m.skops"},
                            "data": {"dataset": "german_credit", "splits": SPLITS}})
    with pytest.raises(TargetError, match="cannot predict on the spec's data"):
        load_scenario(spec)


def test_remote_target_sets_the_endpoint() -> None:
    spec = parse_spec(HEAD + """
model: {format: remote, classes: [bad, good], remote: {url: "http://127.0.0.1:9/v1/predict"}}
data: {dataset: german_credit}
""")
    sc = load_scenario(spec)
    assert sc.attack_data().endpoint == "http://127.0.0.1:9/v1/predict"
    assert sc.model_factory is None
