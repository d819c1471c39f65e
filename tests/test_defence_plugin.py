"""Adding a defence or a serving guard is one class: registered, it is planned for the
countermeasure it declares, built by the scan and held to the contract suite, with no other edit.

The throwaway defence and guard below live in this test module only (registered for the duration
of each test): a robust-algorithm defence that drops every third record, and a gateway guard
that answers at most a fixed number of records.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.utils import check_array, check_consistent_length
from sklearn.utils.estimator_checks import check_estimator

import test_defences_contract as contract
from finmlsec.arrays import take_rows
from finmlsec.defences import DEFENCES, GUARDS, Defence, Guard
from finmlsec.defences._params import Int
from finmlsec.errors import BudgetExceededError
from finmlsec.scan import get_profile, make_plan
from finmlsec.scan.work import build_defended
from finmlsec.spec import parse_spec
from finmlsec.threatmodel import analyze
from test_attack_plugin import OFFICE

NAME, GUARD = "robust.throwaway", "ratelimit.throwaway"


class DropSome(Defence):
    """Fits a clone of ``estimator`` without every ``step``-th record."""

    countermeasure: ClassVar[str] = "robust_algorithm"
    counters: ClassVar[frozenset[str]] = frozenset({"generate_malicious_model"})
    stage: ClassVar[str] = "training"
    summary: ClassVar[str] = "a test defence"
    transparent: ClassVar[bool] = True
    rank: ClassVar[int] = -1  # tried before the package's robust algorithms
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {"step": [Int(1)]}

    def __init__(self, estimator: Any = None, *, step: int = 3) -> None:
        self.estimator = estimator
        self.step = step

    def _fit(self, X: Any, y: Any) -> None:
        if not hasattr(X, "iloc"):
            X = check_array(X, accept_sparse="csr")
        check_consistent_length(X, y)
        rows = np.flatnonzero(np.arange(len(y)) % self.step != self.step - 1)
        self._adopt(clone(self._inner()).fit(take_rows(X, rows), y[rows]))


class FewRecords(Guard):
    """Answers at most ``limit`` records, then refuses."""

    countermeasure: ClassVar[str] = "gateway_rate_limiting"
    counters: ClassVar[frozenset[str]] = frozenset({"dos_model_operator"})
    stage: ClassVar[str] = "gateway"
    summary: ClassVar[str] = "a test guard"
    scanned: ClassVar[bool] = True
    rank: ClassVar[int] = -1
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {"limit": [Int(1)]}

    def __init__(self, *, limit: int = 10) -> None:
        self.limit = limit

    def wrap(self, model: Any, X: Any = None) -> Any:
        from finmlsec.defences.ratelimit import QueryBudget

        return QueryBudget(per_minute=None, lifetime=self.validate().limit).wrap(model)


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(DEFENCES._items, NAME, DropSome)  # removed again after the test
    monkeypatch.setitem(GUARDS._items, GUARD, FewRecords)
    yield


def test_the_planner_picks_up_a_new_defence_and_guard(registered: None) -> None:
    plan = make_plan(analyze(parse_spec(OFFICE)), profile=get_profile("quick"), seed=0)
    poisoning = next(t for t in plan.threats if t.key == "generate_malicious_model@training_data")
    assert poisoning.defences["robust_algorithm"] == (NAME,)  # rank -1: first
    dos = next(t for t in plan.threats if t.key == "dos_model_operator@model_io")
    assert dos.defences["gateway_rate_limiting"] == (GUARD,)
    assert any(u.defences == (NAME,) for u in plan.units)


def test_the_scan_builds_them(registered: None, tmp_path) -> None:
    from finmlsec.scan.work import ScanContext, scenario_for
    from scan_support import build_credit_system

    sc = scenario_for(ScanContext(spec_path=str(build_credit_system(tmp_path))))
    model = build_defended(sc, (NAME,), seed=0)
    assert isinstance(model, DropSome) and model.estimator_ is not None
    served = build_defended(sc, (NAME, GUARD), seed=0)
    assert served.predict(sc.test.X.iloc[:10]).shape == (10,)
    with pytest.raises(BudgetExceededError):
        served.predict(sc.test.X.iloc[:1])


def test_the_contract_suite_holds_them(registered: None) -> None:
    from finmlsec.datasets import load
    from finmlsec.schema import preprocessor

    d = load("german_credit")
    tr, te = d.split(0.5, seed=0)

    def make() -> Any:
        from sklearn.pipeline import make_pipeline

        return make_pipeline(preprocessor(d.schema, categories="data"),
                             LogisticRegression(max_iter=500))

    contract.test_defence_declares_catalogue_ids_and_constructs_with_defaults(NAME, DropSome)
    contract.test_defence_checks_each_declared_parameter_at_fit(NAME, DropSome, "step")
    contract.test_fit_leaves_data_unchanged_is_seeded_and_answers(
        NAME, DropSome, (d, tr, te, make))
    check_estimator(DropSome(LogisticRegression()))
    contract.test_guard_declares_catalogue_ids_and_valid_defaults(GUARD, FewRecords)
    contract.test_guard_checks_each_declared_parameter(GUARD, FewRecords, "limit")
    contract.test_scanned_guard_wraps_a_fitted_model(GUARD, FewRecords, (d, tr, te, make))
