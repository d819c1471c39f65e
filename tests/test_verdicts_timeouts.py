"""Unit time limits scale with the data and with the time the unit's model fits take, and a unit
that runs out says which option raises it."""

from __future__ import annotations

from pathlib import Path

import pytest

from scan_support import build_credit_system, finmlsec


def _analysis() -> dict:
    return {"type": 1, "threats": [{"attack": "infer_model", "via": "model_io",
                                    "countermeasures": ["modify_confidence"]},
                                   {"attack": "infer_training_data", "via": "model_io",
                                    "countermeasures": ["modify_confidence"]}]}


def test_limits_grow_with_the_data_and_the_attack_cost() -> None:
    from finmlsec.scan.plan import make_plan
    from finmlsec.scan.profiles import get_profile

    quick = get_profile("quick")
    small = make_plan(_analysis(), profile=quick, data_cells=600 * 20)
    large = make_plan(_analysis(), profile=quick, data_cells=50_000 * 20)
    lim = {u.id: u.timeout for u in small.units}
    for u in small.units:
        assert 20.0 <= u.timeout <= 20.0 * 2 * 3  # a tight limit on small data
        assert u.timeout_base == 20.0
    for u in large.units:
        assert u.timeout == pytest.approx(50 * lim[u.id])  # 1,000,000 cells: 50 times
    undefended = [u for u in small.units if not u.defences]
    for u in small.units:
        if u.defences:
            base = next(b for b in undefended if b.attack == u.attack)
            assert u.timeout == 2 * base.timeout  # a defended unit first trains its model
    # thorough has a limit too: path-finding on a boosted model (a leaf per intersection of
    # every tree's leaves) ran for hours a seed, so a thorough scan never finished
    thorough = make_plan(_analysis(), profile=get_profile("thorough"), data_cells=12_000).units
    assert thorough and all(900.0 <= u.timeout <= 900.0 * 2 * 3 for u in thorough)


def _with_poisoning() -> dict:
    analysis = _analysis()
    analysis["threats"].append({"attack": "generate_malicious_model",
                                "via": "false_prediction_data",
                                "countermeasures": ["robust_algorithm"]})
    return analysis


def test_limits_grow_with_the_time_the_model_takes_to_fit() -> None:
    from finmlsec.scan.plan import make_plan
    from finmlsec.scan.profiles import get_profile

    quick = get_profile("quick")
    timed: list[int] = []

    def slow() -> float:  # one fit of a model that takes a second (a 300-tree forest)
        timed.append(1)
        return 1.0

    fast = {u.id: u for u in make_plan(_with_poisoning(), profile=quick, data_cells=12_000,
                                       fit_seconds=0.01).units}
    plan = make_plan(_with_poisoning(), profile=quick, data_cells=12_000, fit_seconds=slow)
    assert timed == [1] and plan.fit_seconds == 1.0  # timed once for the whole plan
    for u in plan.units:
        if u.fits * 1.0 * 2 > fast[u.id].timeout:
            assert u.timeout == pytest.approx(u.fits * 2) and u.fit_seconds == 1.0
        else:  # no fits, or too few to matter: the limit is the profile's, as before
            assert u.timeout == fast[u.id].timeout
    # the feedback loop retrains the model each round (6), for each target's own campaign and
    # attribution (5 + 5), and twice more; under bagging every fit is 15 voters, plus the
    # defended model itself: 15 + 18 x 15 fits
    bagged = next(u for u in plan.units if u.defences == ("robust.bagging",))
    assert (bagged.fits, bagged.timeout, fast[bagged.id].timeout) == (285.0, 570.0, 40.0)
    undefended = next(u for u in plan.units if u.attack == bagged.attack and not u.defences)
    assert undefended.timeout == 36.0 > fast[undefended.id].timeout
    membership = [u for u in plan.units if u.attack == "membership.metric"]
    assert membership and all(u.fits == 0 and u.fit_seconds is None for u in membership)
    # --unit-timeout 0: no limit, however slow the model, and nothing to time
    none = make_plan(_with_poisoning(), profile=quick.model_copy(update={"unit_timeout": None}),
                     data_cells=12_000, fit_seconds=slow)
    assert timed == [1] and none.fit_seconds is None
    assert all(u.timeout is None for u in none.units)


def test_a_slow_model_retrained_by_a_unit_does_not_time_out(tmp_path: Path) -> None:
    """A unit that retrains a slow model gets the time its fits take: the feedback loop on a
    100-tree forest (about 0.3 s a fit) runs about 1.3 s of CPU, more than a base limit of
    0.5 s that stopped it before fits were counted."""
    import skops.io as sio
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline

    from finmlsec.datasets import load
    from finmlsec.datasets.splits import split_three
    from finmlsec.scan import get_profile, make_executor, run_scan, start_scan
    from finmlsec.schema import preprocessor
    from finmlsec.store import Store
    from scan_support import SPEC

    ds = load("german_credit")
    train, _, _ = split_three(ds, 0)
    forest = make_pipeline(preprocessor(ds.schema, categories="data"),
                           RandomForestClassifier(100, random_state=0, n_jobs=1))
    sio.dump(forest.fit(train.X, train.y), tmp_path / "model.skops")
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(seed=0).replace(
        "path: model.skops}", "path: model.skops, trusted_types: [sklearn.tree._tree.Tree]}"),
        encoding="utf-8")
    store = Store.open(str(tmp_path / "f.db"))
    profile = get_profile("quick").model_copy(update={
        "only": ("poisoning.feedback_loop",), "max_defences": 0, "unit_timeout": 0.5,
        "attack_params": {"poisoning.feedback_loop": {"n_targets": 1, "max_rounds": 2}}})
    rid = start_scan(spec, store=store, profile=profile, seed=0)
    run = store.run(rid)
    seconds = run.options["fit_seconds"]  # recorded with the run: the report shows it
    assert seconds is not None and seconds > 0.05
    (planned,) = run.plan["units"]
    assert planned["fits"] == 6.0 and planned["fit_seconds"] == seconds
    assert planned["timeout"] == pytest.approx(max(0.5, 6 * seconds * 2), abs=0.05)
    run_scan(store, rid, executor=make_executor("serial"))
    (unit,) = store.units(rid)
    assert unit.status == "done", unit.outcome["error"]
    assert unit.outcome["cpu_seconds"] > 0.5  # the profile's limit alone would have stopped it


def test_a_timed_out_unit_names_the_option_to_raise(tmp_path: Path) -> None:
    from finmlsec.scan.plan import Unit
    from finmlsec.scan.work import ScanContext, execute_unit

    spec = build_credit_system(tmp_path)
    unit = Unit(id="u", threat="infer_training_data", via="model_io",
                attack="membership.shadow", timeout=0.05, timeout_base=20.0)
    ctx = ScanContext(spec_path=str(spec))
    # the limit also covers loading the system: a timer that fires inside the model loader
    # (which reports it as its own error) is still a timeout
    out = execute_unit(ctx, unit)
    assert out["status"] == "error"
    first = out["error"].splitlines()[0]
    assert first.startswith("UnitTimeout: the unit ran longer than its limit of 0.05 s of CPU time")
    assert "the profile's 20 s" in first and "--unit-timeout SECONDS" in first
    # a unit that fits the model says how many fits, at what measured time, its limit allows
    fitting = unit.model_copy(update={"fits": 4.0, "fit_seconds": 0.02})
    first = execute_unit(ctx, fitting)["error"].splitlines()[0]
    assert "at least 2 times its 4 fit(s) of the model at 0.02 s each" in first
    assert "--unit-timeout SECONDS" in first


def test_the_cli_option_sets_the_base_limit(tmp_path: Path) -> None:
    from finmlsec.store import Store

    spec = build_credit_system(tmp_path / "system")
    db = str(tmp_path / "f.db")
    out = finmlsec("scan", str(spec), "--profile", "quick", "--executor", "serial", "-q",
                   "--attack", "extraction.equation", "--defence", "confidence.round",
                   "--unit-timeout", "7", "--db", db, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    run = Store.open(db).runs()[0]
    units = run.plan["units"]
    assert {u["timeout_base"] for u in units} == {7.0}
    assert sorted(u["timeout"] for u in units) == [7.0, 14.0]
    bad = finmlsec("scan", str(spec), "--unit-timeout", "-1", "--db", db, cwd=tmp_path)
    assert bad.returncode == 2 and "--unit-timeout" in bad.stderr
