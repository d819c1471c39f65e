"""The repository's extraction attacks against the real gateway (uvicorn on loopback, default
policy of ``finmlsec serve demo``): each is blocked before its copy is 5 points of fidelity above
the attacker's no-query baseline; genuine clients replaying held-out applicants are not blocked.
The full harness, on every use case, is ``python bench/run.py gateway_attacks``."""

from __future__ import annotations

from pathlib import Path

import pytest

from finmlsec.attacks.extraction_equation import EquationSolving
from finmlsec.attacks.extraction_learning import LearningExtraction
from finmlsec.gateway import redteam as rt
from finmlsec.gateway.defaults import derive_policy
from finmlsec.gateway.policy import Policy


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> rt.Scenario:
    return rt.demo_scenario(workdir=tmp_path_factory.mktemp("redteam"))


def test_the_default_policy_is_what_serve_demo_derives(scenario: rt.Scenario) -> None:
    policy = derive_policy(None, has_reference=True)[0]
    assert (scenario.access, scenario.decimals) == rt.output_access(policy) == ("rounded", 1)
    assert policy.extraction.enabled and policy.screening.enabled


@pytest.mark.parametrize("batch", [10, 100])
def test_equation_solving_is_blocked_before_it_beats_the_baseline(scenario: rt.Scenario,
                                                                  batch: int) -> None:
    fallback = rt.public_copy(scenario)
    (o,) = rt.attack_gateway(scenario, [("equation", EquationSolving(n_uniform=0), 49)],
                             fallback=fallback, batch_size=batch)
    assert not o.error, o.error
    assert o.blocked_after is not None and o.blocked_by == "extraction detection", o
    assert o.blocked_after < 49  # fewer answers than the d + 1 the system needs
    if batch == 100:  # one request of all 49 queries: the request that tips PRADA is refused
        assert o.rows_answered == 0
    assert o.stopped and o.fidelity <= o.baseline + rt.MARGIN, o


def test_learning_extraction_is_blocked_before_it_beats_the_baseline(
        scenario: rt.Scenario) -> None:
    attack = LearningExtraction(budget=300, rounds=3, pool=1000, n_uniform=0, use_proba=False)
    (o,) = rt.attack_gateway(scenario, [("learning", attack, 300)],
                             fallback=rt.public_copy(scenario), batch_size=10)
    assert not o.error and o.blocked_after is not None and o.blocked_after <= 60, o
    assert o.stopped, o


def test_without_the_guards_the_same_attack_copies_the_model(tmp_path: Path) -> None:
    """The harness can tell: with full probabilities and no detector, equation solving copies
    the model far above the baseline (so the test above can fail)."""
    sc = rt.demo_scenario(workdir=tmp_path, policy=Policy())
    (o,) = rt.attack_gateway(sc, [("equation", EquationSolving(n_uniform=0), 49)],
                             fallback=rt.public_copy(sc), batch_size=10)
    assert o.blocked_after is None and o.rows_answered == 49
    assert not o.stopped and o.fidelity > 0.99


def test_genuine_clients_are_not_blocked(scenario: rt.Scenario) -> None:
    g = rt.genuine_clients(scenario, scenario.genuine_records, clients=8, rows_per_client=60,
                           per_request=2)
    assert g.rows == 8 * 60
    assert g.blocked == 0 and g.flagged == 0 and g.screened_rows <= 2, g


def test_the_cutoff_control_answers_k_queries_from_the_model(scenario: rt.Scenario) -> None:
    """The harness's control: the model answers the first k queries, the attacker's own copy
    every later one; the fidelity interval is reported over the evaluation records."""
    import numpy as np

    fallback = rt.public_copy(scenario)
    X = scenario.data.test.X.iloc[:10]
    oracle = rt.CutoffOracle(scenario.target, fallback, 7, access="proba", budget=10)
    got = np.vstack([oracle.predict_proba(X.iloc[:4]), oracle.predict_proba(X.iloc[4:])])
    np.testing.assert_allclose(got[:7], scenario.target.predict_proba(X.iloc[:7]))
    np.testing.assert_allclose(got[7:], fallback.predict_proba(X.iloc[7:]))
    assert oracle.queries_used == 10
    from dataclasses import replace

    exact = replace(scenario, access="proba")  # full-precision answers: equation solving copies
    eq = EquationSolving(n_uniform=0)
    blind = rt.cutoff_fidelity(exact, eq, 49, fallback, 0)
    told = rt.cutoff_fidelity(exact, eq, 49, fallback, 49)
    assert told >= 0.97 and told > blind + 0.05, (blind, told)
    lo, hi = rt.wilson(29 / 48, 48)
    assert round(lo, 2) == 0.46 and round(hi, 2) == 0.73
