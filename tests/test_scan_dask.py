"""A scan on a Dask cluster whose workers never see the spec's files, and a unit's reference
models spread as tasks of their own: the same results as the serial executor."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from finmlsec.scan import bundle as bundles
from finmlsec.scan import get_profile, make_executor, run_scan, start_scan, work
from finmlsec.store import Store
from scan_support import build_credit_system, comparable_units

LIRA = "membership.lira"
PROFILE = get_profile("quick").model_copy(update={
    "only": ("extraction.equation", LIRA), "only_defences": ("confidence.round",),
    "attack_params": {LIRA: {"n_reference": 4}}})


def _system(directory: Path) -> Path:
    """The small credit system with its data as files: feature schema, splits as CSV, model."""
    from finmlsec.datasets import load
    from finmlsec.datasets.splits import split_three, write_split

    spec = build_credit_system(directory)
    ds = load("german_credit")
    for role, part in zip(("train", "test", "population"), split_three(ds, 0), strict=True):
        write_split(part, directory / f"{role}.csv")
    (directory / "schema.yaml").write_text(yaml.safe_dump(ds.schema.model_dump(mode="json")))
    doc = yaml.safe_load(spec.read_text())
    doc["data"] = {"dataset": "german_credit", "schema": "schema.yaml", "seed": 0,
                   "splits": {"train": "train.csv", "test": "test.csv",
                              "population": "population.csv"}}
    spec.write_text(yaml.safe_dump(doc))
    return spec


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Two worker processes of one thread, in a directory of their own."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, protocol="tcp",
                      local_directory=str(tmp_path_factory.mktemp("workers"))) as c:
        yield c


@pytest.mark.slow
def test_dask_workers_need_no_spec_files_and_spread_reference_models(
        tmp_path: Path, cluster: Any) -> None:
    spec = _system(tmp_path / "system")
    store = Store.open(str(tmp_path / "d.db"))
    serial = start_scan(spec, store=store, profile=PROFILE, seed=3)
    run_scan(store, serial, executor=make_executor("serial"))
    rid = start_scan(spec, store=store, profile=PROFILE, seed=3)
    assert store.run(rid).options["bundle"] == store.run(serial).options["bundle"]
    # the spec's directory is gone, and this process forgets what it loaded from it: the run
    # scans what was planned, from the bundle the store kept
    shutil.rmtree(spec.parent)
    work._SCENARIOS.clear()
    work._BUNDLES.clear()
    bundles.forget()
    ex = make_executor("dask://" + cluster.scheduler_address.removeprefix("tcp://"))
    try:
        run_scan(store, rid, executor=ex)
        seen = ex.client.run(os.getcwd)  # the workers' own directories
    finally:
        ex.close()
    assert not spec.parent.exists() and all(str(spec.parent) not in d for d in seen.values())
    units = {u.unit_id: u for u in store.units(rid)}
    lira = units[f"infer_training_data@model_io/{LIRA}"]
    assert lira.status == "done" and lira.outcome["result"]["metrics"]["reference_models"] == 4
    # the four reference models ran as tasks of their own
    assert [len(p["seconds"]) for p in lira.outcome["pieces"]] == [4]
    assert all(u.worker and int(u.worker.rsplit(":", 1)[1]) != os.getpid()
               for u in units.values())
    assert comparable_units(store, serial) == comparable_units(store, rid)


def test_a_bundle_holds_the_spec_and_its_files_and_refuses_tampering(tmp_path: Path) -> None:
    spec = _system(tmp_path / "system")
    payload = bundles.make_bundle(spec)
    assert payload is not None and bundles.make_bundle(spec) == payload  # deterministic
    meta = bundles.manifest(payload)
    assert sorted(meta["files"]) == ["data.schema", "data.splits.population", "data.splits.test",
                                     "data.splits.train", "model.path"]
    shutil.rmtree(spec.parent)
    loaded = bundles.open_bundle(payload)
    assert Path(loaded.model.path).read_bytes()[:2] == b"PK"  # the skops file, unpacked
    assert Path(loaded.data.splits.train).name == "train.csv"
    import io
    import zipfile

    forged = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(payload)) as src, zipfile.ZipFile(forged, "w") as dst:
        for info in src.infolist():
            blob = src.read(info)
            dst.writestr(info, blob + b"\n" if info.filename.endswith("train.csv") else blob)
    bundles.forget()
    with pytest.raises(Exception, match="corrupt"):
        bundles.unpack(forged.getvalue())


def _fit_spread(estimator: Any, X: Any, y: Any) -> tuple[Any, list[dict[str, Any]]]:
    """Fit ``estimator`` on a Dask worker, its pieces spread as tasks (as a scan's unit does)."""
    from sklearn.base import clone

    from finmlsec.scan.executors import dask_map
    from finmlsec.tasks import mapping_with, recording

    with mapping_with(dask_map), recording() as ledger:
        model = clone(estimator).fit(X, y)
    return model.predict_proba(X), ledger


@pytest.mark.slow
def test_teachers_and_voters_spread_on_dask_give_the_serial_model(cluster: Any) -> None:
    import sys

    import cloudpickle
    import numpy as np
    from distributed import Client
    from sklearn.base import clone
    from sklearn.pipeline import make_pipeline
    from sklearn.tree import DecisionTreeClassifier

    from finmlsec.datasets import load
    from finmlsec.defences import DEFENCES
    from finmlsec.schema import preprocessor

    ds = load("german_credit")
    X, y = ds.X.iloc[:300], np.asarray(ds.y)[:300]
    tree = DecisionTreeClassifier(max_depth=4, random_state=0)
    models = {"pate": DEFENCES.get("pate")(make_pipeline(preprocessor(ds.schema), tree),
                                           n_teachers=5, random_state=0),
              # on a DataFrame, bagging votes with SubsampleVote (unseeded voters get seeds)
              "robust.bagging": (DEFENCES.get("robust.bagging")(
                  DecisionTreeClassifier(max_depth=4), n_estimators=5, random_state=0))}
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers do not import tests
    with Client(cluster.scheduler_address) as client:
        for name, est in models.items():
            Xi = X if name == "pate" else X.select_dtypes("number")
            serial = clone(est).fit(Xi, y).predict_proba(Xi)
            spread, ledger = client.submit(_fit_spread, est, Xi, y, pure=False).result()
            assert [len(m["seconds"]) for m in ledger] == [5], name  # five tasks of their own
            np.testing.assert_array_equal(spread, serial, err_msg=name)
