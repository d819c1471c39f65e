"""Unit time limits scale with the data, and a unit that runs out says which option raises it."""

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
