"""Data at scale: the simulator written to Parquet in parts, read back in chunks, and a bounded,
seeded, stratified sample that does not depend on how the data is chunked; a scan of the Parquet
data gives the same results as a scan of the same rows held in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from finmlsec.datasets.card_fraud import SCHEMA, simulate, simulate_parts, write_parquet
from finmlsec.datasets.chunked import sample_frame, sample_path
from finmlsec.datasets.splits import load_sampled
from finmlsec.errors import DataError


def _frame(n: int = 20_000, rate: float = 0.02, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = np.where(rng.random(n) < rate, "fraud", "legit")
    return pd.DataFrame({"x": rng.normal(size=n), "k": np.arange(n), "label": y})


def test_the_sample_is_seeded_stratified_bounded_and_independent_of_chunking() -> None:
    frame = _frame()
    a = sample_frame(frame, "label", sample=4000, seed=7)
    again = sample_frame(frame, "label", sample=4000, seed=7, chunk_rows=997)
    other = sample_frame(frame, "label", sample=4000, seed=8)
    for split, share in (("train", 0.5), ("test", 0.25), ("population", 0.25)):
        X, labels = a.parts[split]
        assert X.equals(again.parts[split][0])  # chunks of 997 rows: the same sample
        assert not X["k"].equals(other.parts[split][0]["k"])  # another seed: another sample
        assert len(X) <= 4000 * share + 1  # bounded (+1: every class keeps a row)
        assert X["k"].is_monotonic_increasing  # in the data's order
        held = a.info.class_rows[split]
        n = sum(held.values())
        for cls, n_c in held.items():  # each class keeps its share of the split
            assert int((labels == cls).sum()) == max(1, int(4000 * share) * n_c // n)
    # splits are disjoint and the sample is stated
    keys = [set(a.parts[s][0]["k"]) for s in a.parts]
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])
    assert a.info.sampled and "stratified sample of" in a.info.statement()
    # a smaller sample is a subset of a larger one (a model's training rows hold the scan's)
    small = sample_frame(frame, "label", sample=1000, seed=7)
    assert set(small.parts["train"][0]["k"]) <= set(a.parts["train"][0]["k"])
    # a rare class keeps at least one row
    rare = sample_frame(_frame(rate=0.0005), "label", sample=400, seed=0)
    assert all((labels == "fraud").sum() >= 1 for _, labels in rare.parts.values()
               if "fraud" in rare.info.class_rows)


def test_the_simulator_writes_parts_and_one_part_is_the_simulation(tmp_path: Path) -> None:
    X, y, _ = next(simulate_parts(4000, seed=2, part_rows=4000))
    X0, y0, _ = simulate(4000, seed=2)
    assert X.equals(X0) and np.array_equal(y, y0)
    info = write_parquet(tmp_path / "tx", 9000, seed=2, part_rows=3000)
    assert info["rows"] == 9000 and len(info["files"]) == 3
    back = pd.concat([pd.read_parquet(tmp_path / "tx" / f) for f in info["files"]])
    assert len(back) == 9000 and int((back["is_fraud"] == "fraud").sum()) == info["frauds"]
    SCHEMA.check(back.drop(columns=["is_fraud"]))
    with pytest.raises(DataError, match="not among the schema's classes"):
        pd.DataFrame({"x": [1.0] * 10, "is_fraud": ["maybe"] * 10}).to_parquet(
            tmp_path / "bad.parquet")
        sample_path(tmp_path / "bad.parquet", "is_fraud", sample=10, classes=("legit", "fraud"))


SPEC = """\
organisations: [{{id: bank}}, {{id: vendor}}]
roles: {{training_data_provider: bank, system_user: bank, model_generator: vendor,
        model_operator: vendor}}
stakes: {{training_data: personal, model_value: moderate, harm_of_wrong_output: high}}
model: {{format: skops, path: model.skops, trusted_types: [{trusted}]}}
data: {{path: {path}, label: is_fraud, schema: schema.yaml, seed: 0, sample: 3000}}
"""


def test_a_scan_of_parquet_read_in_chunks_equals_the_scan_of_the_rows_in_memory(
        tmp_path: Path) -> None:
    import skops.io as sio
    import yaml
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline

    from finmlsec.report.scan import scan_document
    from finmlsec.scan import get_profile, make_executor, run_scan, start_scan
    from finmlsec.schema import preprocessor
    from finmlsec.store import Store

    info = write_parquet(tmp_path / "tx", 6000, seed=3, part_rows=2000)
    frame = pd.concat([pd.read_parquet(tmp_path / "tx" / f) for f in info["files"]],
                      ignore_index=True)
    frame.to_csv(tmp_path / "tx.csv", index=False)  # the same rows, read whole
    frame.to_parquet(tmp_path / "one.parquet", index=False)  # one file: shipped in the bundle
    (tmp_path / "schema.yaml").write_text(yaml.safe_dump(SCHEMA.model_dump(mode="json")))
    _, train, _, _ = load_sampled(tmp_path / "tx", "is_fraud", SCHEMA, sample=3000, seed=0,
                                  chunk_rows=700)
    model = make_pipeline(preprocessor(SCHEMA, categories="data", scale=False),
                          HistGradientBoostingClassifier(max_iter=20, random_state=0))
    sio.dump(model.fit(train.X, train.y), tmp_path / "model.skops")
    trusted = ",".join(t for t in sio.get_untrusted_types(file=tmp_path / "model.skops")
                       if "TreePredictor" in t)
    docs = []
    for name, path in (("parquet", "tx"), ("memory", "tx.csv"), ("file", "one.parquet")):
        spec = tmp_path / f"{name}.yaml"
        spec.write_text(SPEC.format(path=path, trusted=trusted))
        store = Store.open(str(tmp_path / f"{name}.db"))
        profile = get_profile("quick").model_copy(update={
            "only": ("membership.metric", "extraction.equation"), "max_defences": 0})
        rid = start_scan(spec, store=store, profile=profile, seed=0)
        run_scan(store, rid, executor=make_executor("serial"))
        docs.append(scan_document(store.run(rid), store.units(rid)))
    parquet, memory, one_file = docs
    assert parquet["run"]["options"]["bundle"] is None  # a directory is read where it is
    assert one_file["run"]["options"]["bundle"] is not None
    assert parquet["run"]["options"]["data_sample"]["rows"] == 6000
    assert "sample of" in parquet["run"]["options"]["data_sample"]["statement"]
    done = [u for u in parquet["units"] if u["status"] == "done"]
    assert {u["attack"] for u in done} == {"membership.metric", "extraction.equation"}
    for other in (memory, one_file):
        for a, b in zip(parquet["units"], other["units"], strict=True):
            assert (a["id"], a["status"], a["success"], a["metrics"], a["utility"]) == (
                b["id"], b["status"], b["success"], b["metrics"], b["utility"])
        assert [t["risk"] for t in parquet["threats"]] == [t["risk"] for t in other["threats"]]


def test_demo_build_rows_is_for_the_fraud_use_case_only(capsys: pytest.CaptureFixture[str],
                                                        tmp_path: Path) -> None:
    from finmlsec.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["demo", "build", "credit-scoring", "--rows", "5000", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and len(err.splitlines()) == 1
    assert "--rows builds the 'fraud' use case" in err
