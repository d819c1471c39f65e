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


def _outcome(fid: float, base: float, b: int | None, c: int | None, n: int) -> rt.AttackOutcome:
    return rt.AttackOutcome("s", "a", fid, base, 0, 0, 0, None, "", 0.0, n_eval=n,
                            only_copy=b, only_baseline=c)


def test_not_stopped_is_claimed_only_when_the_paired_test_measures_it() -> None:
    """The verdict compares the copy with the baseline copy record by record: 11 records won
    and 2 lost out of 90 (10 points above the baseline) is not significantly more than 5 points
    above it; 30 won and 2 lost is; at or below the margin the attack is stopped outright."""
    ns = _outcome(0.767, 0.667, 11, 2, 90)
    assert ns.stopped and ns.verdict == "yes (n.s.)" and 0.05 < ns.p_value < 0.2, ns.p_value
    assert 0.0 < ns.lift_lower < rt.MARGIN  # above the baseline, not shown above the margin
    big = _outcome(0.978, 0.667, 30, 2, 90)
    assert not big.stopped and big.verdict == "NO" and big.p_value < rt.ALPHA
    assert big.lift_lower > rt.MARGIN
    assert _outcome(0.70, 0.667, 5, 2, 90).verdict == "yes"
    assert _outcome(0.767, 0.667, None, None, 90).verdict == "NO"  # no counts: point estimate
    lo, hi = ns.interval  # the fidelity alone is uncertain by more than the margin
    assert hi - lo > 2 * rt.MARGIN


def test_the_market_evaluation_set_adds_the_nasdaq_days(tmp_path: Path) -> None:
    """The market model flags too few days of its own splits for a balanced set (24): the
    evaluator's pool adds the NASDAQ Composite days, none of them the attacker's."""
    import numpy as np

    sc = rt.usecase_scenario("market-anomaly", "gbm", tmp_path)
    test = sc.data.test
    flagged = np.asarray(sc.target.predict(test.X)).astype(int)
    assert len(test) == 90 and flagged.sum() == 45, (len(test), flagged.sum())
    without = rt.usecase_scenario("market-anomaly", "gbm", tmp_path, extra=False)
    assert len(without.data.test) == 48
    pop = {tuple(r) for r in np.round(sc.data.population.X.to_numpy(), 9)}
    assert not pop & {tuple(r) for r in np.round(test.X.to_numpy(), 9)}
