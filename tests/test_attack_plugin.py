"""Adding an attack is one class: registered in ``ATTACKS`` it is planned, ranked, configured by
the scan profiles and filtered by input kind from its own class attributes, with no other edit.

The throwaway attack below lives in this test module only (registered for the duration of each
test); it realises ``infer_model`` through the model's input and output, is the cheapest and the
strongest of its threat, and has an ``n_uniform`` parameter the profiles scale.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from finmlsec.attacks import ATTACKS, Attack, AttackData, Meter, Outcome
from finmlsec.scan import get_profile, make_plan
from finmlsec.scan.executors import make_executor
from finmlsec.scan.runner import run_scan, start_scan
from finmlsec.spec import parse_spec
from finmlsec.store import Store
from finmlsec.threatmodel import analyze
from scan_support import build_credit_system

NAME = "extraction.throwaway"


class Throwaway(Attack):
    """Agreement of the target with a constant guess on ``n_uniform`` population records."""

    name: ClassVar[str] = NAME
    threat: ClassVar[str] = "infer_model"
    via: ClassVar[str] = "model_io"
    needs: ClassVar[frozenset[str]] = frozenset({"label", "population"})
    summary: ClassVar[str] = "a test attack"
    input_kinds: ClassVar[tuple[str, ...]] = ("tabular",)
    cost_rank: ClassVar[int] = 0
    strength_rank: ClassVar[int] = 0

    n_uniform: int = 2000
    seed: int = 0

    def _attack(self, oracle: Any, data: AttackData, meter: Meter) -> Outcome:
        assert data.population is not None
        X = data.population.X.iloc[: self.n_uniform]
        pred = np.asarray(oracle.predict(X))
        share = float(np.mean(pred == pred[0]))
        return Outcome(success=share, metrics={"agreement": share,
                                               "queries_per_record": meter.queries / len(X)})


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[type]:
    monkeypatch.setitem(ATTACKS._items, NAME, Throwaway)  # removed again after the test
    yield Throwaway


OFFICE = """
organisations: [{id: bank}, {id: vendor}]
roles: {training_data_provider: bank, system_user: bank,
        model_generator: vendor, model_operator: vendor}
stakes: {training_data: personal, model_value: high, harm_of_wrong_output: high}
"""


def _infer_model(plan: Any) -> Any:
    return next(t for t in plan.threats if t.attack == "infer_model")


def test_the_planner_picks_up_a_new_attack_class(registered: type) -> None:
    analysis = analyze(parse_spec(OFFICE))
    quick = make_plan(analysis, profile=get_profile("quick"), seed=0)
    assert _infer_model(quick).attacks == (NAME,)  # cost_rank 0: before extraction.equation
    unit = next(u for u in quick.units if u.attack == NAME)
    assert unit.params == {"n_uniform": 500, "seed": unit.seed}  # the quick profile's override
    standard = make_plan(analysis, profile=get_profile("standard"), seed=0)
    assert _infer_model(standard).attacks[0] == NAME  # strength_rank 0: first of two
    assert {u.attack for u in standard.units} >= {NAME}


def test_a_new_attack_is_left_out_where_its_input_kind_does_not_fit(registered: type,
                                                                     tmp_path: Path) -> None:
    from finmlsec.scan.runner import _checker
    from finmlsec.scan.work import ScanContext, scenario_for

    ctx = ScanContext(spec_path=str(build_credit_system(tmp_path)))
    check, access, _ = _checker(scenario_for(ctx), ctx)
    assert check(Throwaway) is None and access(Throwaway) == "proba"
    Throwaway.input_kinds = ("image",)
    try:
        assert "works on ['image'] inputs, this model takes tabular" in (check(Throwaway) or "")
    finally:
        Throwaway.input_kinds = ("tabular",)


def test_a_scan_runs_the_new_attack_and_reports_its_figures(registered: type,
                                                             tmp_path: Path) -> None:
    spec = build_credit_system(tmp_path)
    store = Store.open(str(tmp_path / "runs.db"))
    prof = get_profile("quick").model_copy(
        update={"only": (NAME,), "only_defences": ("confidence.round",)})
    run_id = start_scan(spec, store=store, profile=prof, seed=0)
    run_scan(store, run_id, executor=make_executor("serial", None))
    units = {u.unit_id: u for u in store.units(run_id)}
    mine = units[f"infer_model@model_io/{NAME}"]
    assert mine.status == "done", mine.outcome
    result = mine.outcome["result"]
    assert result["attack"] == NAME and result["params"] == {"n_uniform": 500,
                                                               "seed": result["params"]["seed"]}
    assert result["queries"] == 500 and result["metrics"]["queries_per_record"] == 1.0
    assert 0.0 <= result["success"] <= 1.0
    assert f"infer_model@model_io/{NAME}+confidence.round" in units


def test_the_command_line_lists_completes_and_checks_names_from_the_registry(
        registered: type, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from typer.testing import CliRunner

    from finmlsec.cli.attack import attack_names
    from finmlsec.cli.main import build_app, main

    assert NAME in attack_names("extraction.") and NAME not in attack_names("membership.")
    listed = CliRunner().invoke(build_app(), ["attack", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    row = next(r for r in json.loads(listed.output) if r["name"] == NAME)
    assert row["input_kinds"] == ["tabular"] and row["data"] == ["population"]
    with pytest.raises(SystemExit) as exit_info:
        main(["attack", "extraction.throwawy", "--spec", "spec.yaml"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"did you mean {NAME!r}" in err
