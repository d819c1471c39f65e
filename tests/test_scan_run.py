"""Scans of a real model: the CLI, identical results across executors, kill and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from finmlsec.cli.main import build_app
from finmlsec.scan import get_profile, make_executor, run_scan, start_scan
from finmlsec.store import Store
from scan_support import build_credit_system, comparable_units, finmlsec

FAST = ("extraction.equation", "evasion.constrained")
PROFILE = get_profile("quick").model_copy(
    update={"only": FAST, "only_defences": ("confidence.round",)})


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_credit_system(tmp_path_factory.mktemp("credit"))


def test_scan_command_stores_decides_and_gates(spec: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "finmlsec.db")
    runner = CliRunner()
    app = build_app()
    args = ["scan", str(spec), "--profile", "quick", "--db", db, "--executor", "serial", "--json",
            "--quiet", "--attack", "extraction.equation", "--attack", "evasion.constrained",
            "--defence", "confidence.round"]
    res = runner.invoke(app, [*args, "--fail-on", "high"])
    assert res.exit_code == 1, res.output  # extraction of a logistic regression is exact: high
    doc = json.loads(res.stdout)
    assert doc["schema_version"] == 1 and doc["run"]["system_type"] == 7
    threats = {(t["attack"], t["via"]): t for t in doc["threats"]}
    infer_model = threats[("infer_model", "model_io")]
    assert infer_model["attacks"][0]["name"] == "extraction.equation"
    assert infer_model["success"] == pytest.approx(1.0)
    assert infer_model["risk"] == "high" and infer_model["decision"] == "mitigate"
    rounded = infer_model["countermeasures"][0]
    assert rounded["defences"] == ["confidence.round"] and rounded["success"] is not None
    assert rounded["utility_drop"] == pytest.approx(0.0, abs=0.02)
    evasion = threats[("induce_false_prediction", "model_io")]
    assert evasion["attacks"][0]["status"] == "done" and evasion["success"] > 0.5
    # threats without a selected attack are reported, with the reason, not silently dropped
    assert threats[("dos_model_operator", "model_io")]["risk"] == "not_measured"
    assert all(u["status"] in ("done", "skipped") for u in doc["units"])
    assert all(u["status"] == "done" for u in doc["units"] if not u["defences"])
    assert doc["summary"]["baseline_utility"]["accuracy"] > 0.6
    # a higher gate passes: exit 0 when nothing reaches it is covered by --fail-on absent
    res2 = runner.invoke(app, [*args])
    assert res2.exit_code == 0, res2.output
    listed = json.loads(runner.invoke(app, ["runs", "list", "--db", db, "--json"]).stdout)
    assert [r["id"] for r in listed] == [json.loads(res2.stdout)["run"]["id"], doc["run"]["id"]]
    diff = runner.invoke(app, ["runs", "diff", listed[1]["id"], listed[0]["id"], "--db", db,
                               "--json"])
    d = json.loads(diff.stdout)
    assert d["worse"] == 0 and all(u["delta"] == 0 for u in d["units"])  # same seed, same result
    md = runner.invoke(app, ["report", "last", "--db", db, "--format", "md"])
    assert md.exit_code == 0 and "via model input and output data (`model_io.infer_model`)" in md.stdout


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, spec: Path) -> None:
    runner = CliRunner()
    app = build_app()
    from finmlsec.cli.main import main

    for argv, message in [
        (["scan", str(tmp_path / "missing.yaml"), "--db", str(tmp_path / "a.db")],
         "does not exist"),
        (["scan", "--resume", "nope", "--db", str(tmp_path / "a.db")], "no run 'nope'"),
        (["scan", str(spec), "--attack", "extraction.eqation", "--db", str(tmp_path / "a.db")],
         "did you mean 'extraction.equation'"),
        (["scan", str(spec), "--executor", "ray://x", "--db", str(tmp_path / "a.db")],
         "'executor' parameter"),
    ]:
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2, argv
    res = runner.invoke(app, ["scan", str(spec), "--profile", "fast"])
    assert res.exit_code == 2  # typer's own validation of the choice


@pytest.mark.slow
def test_process_pool_gives_the_same_results_as_serial(spec: Path, tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "s.db"))
    runs = []
    for executor in ("serial", "process"):
        rid = start_scan(spec, store=store, profile=PROFILE, seed=5)
        ex = make_executor(executor, 2)
        try:
            run_scan(store, rid, executor=ex)
        finally:
            ex.close()
        runs.append(rid)
    serial, pooled = (comparable_units(store, r) for r in runs)
    baseline = [k for k in serial if "+" not in k]
    assert len(baseline) == 2 and all(serial[k]["status"] == "done" for k in baseline)
    assert serial == pooled
    workers = {u.worker for u in store.units(runs[1])}
    assert all(w and int(w.rsplit(":", 1)[1]) != os.getpid() for w in workers)
    other_seed = start_scan(spec, store=store, profile=PROFILE, seed=6)
    seeds = [{u["seed"] for u in store.run(r).plan["units"]} for r in (other_seed, runs[0])]
    assert seeds[0].isdisjoint(seeds[1])


@pytest.mark.slow
def test_dask_cluster_gives_the_same_results_as_serial(spec: Path, tmp_path: Path) -> None:
    from distributed import LocalCluster

    store = Store.open(str(tmp_path / "d.db"))
    serial = start_scan(spec, store=store, profile=PROFILE, seed=9)
    run_scan(store, serial, executor=make_executor("serial"))
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, host="127.0.0.1",
                      dashboard_address=None, protocol="tcp") as cluster:
        address = cluster.scheduler_address.removeprefix("tcp://")
        rid = start_scan(spec, store=store, profile=PROFILE, seed=9)
        ex = make_executor(f"dask://{address}")
        assert ex.slots == 2
        try:
            run_scan(store, rid, executor=ex)
        finally:
            ex.close()
    assert comparable_units(store, serial) == comparable_units(store, rid)
    assert len({u.worker for u in store.units(rid)}) >= 1
    assert all(u.worker and int(u.worker.rsplit(":", 1)[1]) != os.getpid()
               for u in store.units(rid))


@pytest.mark.slow
def test_a_killed_scan_resumes_without_redoing_finished_units(spec: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "k.db")
    cmd = [sys.executable, "-m", "finmlsec.cli.main", "scan", str(spec), "--profile", "quick",
           "--db", db, "--executor", "serial", "--attack", "extraction.equation",
           "--attack", "evasion.constrained", "--attack", "membership.rmia",
           "--defence", "confidence.round"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL,  # noqa: S603
                            stderr=subprocess.DEVNULL, start_new_session=True)
    store = None
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            if Path(db).exists():
                try:
                    store = store or Store.open(db, migrate=False)
                    runs = store.runs()
                except Exception:  # noqa: BLE001 - the scan may still be creating the tables
                    runs = []
                if runs:
                    statuses = [u.status for u in store.units(runs[0].id)]
                    if "done" in statuses:
                        break
            assert proc.poll() is None, "the scan ended before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail("the scan finished no unit in 240 s")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert store is not None
    run = store.runs()[0]
    before = {u.unit_id: u for u in store.units(run.id)}
    done = {k for k, u in before.items() if u.status in ("done", "skipped", "error")}
    assert done and len(done) < len(before), [u.status for u in before.values()]
    assert run.status == "running" and run.summary is None  # killed: nothing summarised

    res = finmlsec("scan", "--resume", run.id[:12], "--db", db, "--executor", "serial", "--json",
                   "--quiet", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    after = {u.unit_id: u for u in store.units(run.id)}
    assert all(u.status in ("done", "skipped") for u in after.values()), {
        k: (u.status, (u.outcome or {}).get("error")) for k, u in after.items()}
    for uid in done:  # finished units were not run again
        assert after[uid].attempts == 1 and after[uid].finished_at == before[uid].finished_at
        assert after[uid].outcome == before[uid].outcome
    assert any(after[u].attempts >= 1 and u not in done for u in after)
    final = store.run(run.id)
    assert final.status == "done" and final.summary is not None
    assert json.loads(res.stdout)["run"]["id"] == run.id


def test_a_unit_over_its_time_limit_is_stopped_and_reported(spec: Path) -> None:
    from finmlsec.scan import ScanContext, Unit, execute_unit

    ctx = ScanContext(spec_path=str(spec))
    # 400 reference models take seconds; the limit stops the unit after 0.3 s
    unit = Unit(id="slow", threat="infer_training_data", via="model_io",
                attack="membership.lira", params={"n_reference": 400}, budget=None,
                seed=1, timeout=0.3)
    execute_unit(ctx, unit.model_copy(update={"timeout": None, "params": {"n_reference": 2}}))
    out = execute_unit(ctx, unit)  # scenario already loaded: the limit covers the attack
    assert out["status"] == "error" and out["error"].startswith("UnitTimeout")
    import signal

    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # timer cleared


def test_the_time_limit_also_stops_a_unit_in_a_worker_thread(spec: Path) -> None:
    # Dask runs units in worker threads, where POSIX timers cannot reach: the thread's own CPU
    # clock is watched instead
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from finmlsec.scan import ScanContext, Unit, execute_unit

    ctx = ScanContext(spec_path=str(spec))
    unit = Unit(id="slow", threat="infer_training_data", via="model_io",
                attack="membership.lira", params={"n_reference": 400}, budget=None,
                seed=1, timeout=0.3)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(execute_unit, ctx, unit.model_copy(
            update={"timeout": None, "params": {"n_reference": 2}})).result()
        out = pool.submit(execute_unit, ctx, unit).result(timeout=120)
        assert out["status"] == "error" and out["error"].startswith("UnitTimeout")
        assert out["cpu_seconds"] < 5
        # a unit within its limit is untouched, and nothing is left pending in the thread
        quick = unit.model_copy(update={"timeout": 60.0, "params": {"n_reference": 2}})
        assert pool.submit(execute_unit, ctx, quick).result()["status"] == "done"
        assert pool.submit(sum, [1, 2]).result() == 3
    assert not [t for t in threading.enumerate() if t.name == "finmlsec-unit-limit"]


def test_the_thread_limit_is_sent_again_when_code_swallows_it() -> None:
    """An exception that lands where it cannot propagate (a broad except, a __del__) is lost:
    the limit is sent again until the unit ends, so one swallow does not let it run on."""
    from concurrent.futures import ThreadPoolExecutor

    from finmlsec.scan.work import UnitTimeout, _time_limit

    swallowed, finished = [], []

    def busy() -> None:
        with _time_limit(0.05):
            # the whole loop inside the try: an exception landing at the loop's own jump (outside
            # a try around its body only) propagated at once on a loaded machine, unswallowed
            while True:  # two passes at most: without a second exception the second ends
                try:
                    for _ in range(30_000_000):
                        sum(range(50))
                    finished.append(1)
                    return
                except UnitTimeout:
                    if swallowed:
                        raise
                    swallowed.append(1)  # the first one is lost, as in a library's except

    with ThreadPoolExecutor(1) as pool, pytest.raises(UnitTimeout):
        pool.submit(busy).result(timeout=120)
    assert swallowed == [1] and not finished  # stopped inside the loop, not at its end


def test_the_thread_limit_counts_waiting_as_wall_time() -> None:
    import time
    from concurrent.futures import ThreadPoolExecutor

    from finmlsec.scan.work import WALL_FACTOR, UnitTimeout, _time_limit

    def wait() -> None:
        with _time_limit(0.05):
            for _ in range(6000):  # a unit waiting on a slow remote model, almost no CPU
                time.sleep(0.01)

    with ThreadPoolExecutor(1) as pool:
        t0 = time.monotonic()
        with pytest.raises(UnitTimeout):
            pool.submit(wait).result(timeout=120)
        waited = time.monotonic() - t0
    assert WALL_FACTOR * 0.05 <= waited < 10
