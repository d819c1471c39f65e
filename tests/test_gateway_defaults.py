"""Secure by default, against a real server on loopback: without --policy the gateway switches on
the guards the analysis calls for and says so; every guard off is a warning; feedback is no side
channel (a client blocked on predict is refused there too, the answer hides the model's confidence,
and the extraction detector sees the reports)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from finmlsec.gateway.defaults import derive_policy, guard_warnings
from finmlsec.gateway.demo import DemoModel, credit_scoring_model
from finmlsec.gateway.policy import Policy
from finmlsec.store.gateway import GatewayDB
from test_gateway_extraction import tramer_queries
from test_gateway_server import Server


@pytest.fixture(scope="module")
def model() -> DemoModel:
    return credit_scoring_model(seed=0)


def test_the_default_policy_follows_the_analysis() -> None:
    from finmlsec.spec import load_spec
    from finmlsec.threatmodel import analyze

    root = Path(__file__).resolve().parents[1]
    specs = sorted((root / "examples").rglob("*.yaml"))
    checked = 0
    for path in specs:
        try:
            a = analyze(load_spec(path))
        except Exception:  # noqa: BLE001 - not a system spec (a policy, a scan profile)
            continue
        rec = {c.id for c in a.countermeasures if c.recommended or c.deployed}
        p, on = derive_policy(a, has_reference=True)
        assert (p.output.mode != "none") == ("modify_confidence" in rec)
        assert p.extraction.enabled == ("gateway_rate_limiting" in rec)
        assert p.screening.enabled == ("detect_malicious_input" in rec)
        assert len(on) == sum(x in rec for x in ("modify_confidence", "detect_malicious_input")) \
            + 2 * ("gateway_rate_limiting" in rec)
        checked += 1
    assert checked >= 1
    # the promised rate limit exists, and PRADA judges before an equation-solving attack on
    # credit scoring (d + 1 = 49 queries) is done
    assert Policy().budget.requests_per_second == 100 and Policy().extraction.min_queries < 49


def test_every_guard_off_is_a_warning() -> None:
    off = Policy.model_validate({"budget": {"requests_per_second": None}})
    w = guard_warnings(off, host="127.0.0.1")
    assert [x.split(":")[0] for x in w] == ["output", "budget", "budget", "extraction",
                                            "screening"]
    assert any("without TLS" in x for x in guard_warnings(off, host="0.0.0.0"))
    assert not any("TLS" in x for x in guard_warnings(off, host="0.0.0.0", tls=True))
    on, _ = derive_policy(None, has_reference=True)
    assert guard_warnings(on, host="127.0.0.1") == []


@pytest.mark.slow
def test_default_gateway_blocks_probing_and_feedback_is_no_side_channel(
        model: DemoModel, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gw.db'}"
    db = GatewayDB(url)
    prober, reporter = (db.create_key(org="bank", role="system_user").token for _ in range(2))
    server = Server(["--db", url], tmp_path / "server.log")  # no --policy
    record = json.loads(model.heldout.iloc[:1].to_json(orient="records"))[0]
    probing = tramer_queries(model, 3)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            def post(path: str, token: str, body: dict) -> httpx.Response:
                # the default rate limit (100/s) holds the client back; it waits as told and asks
                # again, as a patient attacker would
                for _ in range(20):
                    r = c.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
                    if r.status_code != 429:
                        return r
                    time.sleep(float(r.headers.get("Retry-After", "1")))
                return r

            r = post("/v1/predict", prober, {"record": record})
            assert r.status_code == 200
            p = r.json()["probabilities"][0]
            assert all(abs(x * 10 - round(x * 10)) < 1e-9 for x in p)  # rounded to 0.1
            # one-field probing through the feedback endpoint alone is caught there
            flagged_at = None
            for i, q in enumerate(probing[:120]):
                r = post("/v1/feedback", reporter, {"record": q, "label": "good"})
                if r.status_code == 403:
                    flagged_at = i
                    break
                assert r.status_code == 202, r.text
                assert set(r.json()) == {"id", "status"}  # no flags: nothing about confidence
            assert flagged_at is not None and flagged_at <= 100
            assert post("/v1/predict", reporter, {"record": record}).status_code == 403
            # probing through predict: blocked there, and then refused on feedback too (a probe
            # the input screen refuses, 422, is no answer and not judged)
            blocked = None
            for i, q in enumerate(probing[:150]):
                r = post("/v1/predict", prober, {"record": q})
                if r.status_code == 403:
                    blocked = i
                    break
                assert r.status_code in (200, 422), r.text
            assert blocked is not None and blocked <= 120
            r = post("/v1/feedback", prober, {"record": record, "label": "good"})
            assert r.status_code == 403
    finally:
        server.stop()
    log = (tmp_path / "server.log").read_text()
    assert "guards derived from the spec's analysis" in log
    for guard in ("output:", "budget:", "extraction:", "screening:"):
        assert f"on: {guard}" in log


def test_default_screen_refuses_at_most_half_a_percent_of_genuine_applicants(
        model: DemoModel) -> None:
    import numpy as np

    from finmlsec.defences.input_screen import OODDetector

    policy, _ = derive_policy(None, has_reference=True)
    rates = [float(np.mean(OODDetector(**{**policy.screening.params, "random_state": s})
                           .fit(model.train).predict(model.heldout) == -1)) for s in range(5)]
    assert max(rates) <= 0.005 and np.mean(rates) <= 0.005


def test_default_output_breaks_exact_equation_solving(model: DemoModel) -> None:
    import numpy as np

    from finmlsec.attacks import AttackData, Labeled
    from finmlsec.attacks.extraction_equation import EquationSolving
    from finmlsec.targets.oracle import Oracle

    policy, _ = derive_policy(None, has_reference=True)
    classes = list(model.target.classes_)
    test = Labeled(model.heldout,
                   np.asarray([classes.index(c) for c in model.target.predict(model.heldout)]))
    data = AttackData(schema=model.schema, test=test)
    exact = EquationSolving().run(Oracle(model.target), data)
    coarse = [EquationSolving(extra_queries=extra).run(
        Oracle(model.target, access="rounded", decimals=policy.output.decimals), data)
        for extra in (0, 441)]
    assert exact.success == 1.0 and exact.queries == 49
    assert coarse[0].success < 0.9  # d + 1 queries: far from a copy
    assert coarse[1].success < 1.0  # 10 (d + 1): no exact copy (PRADA and budgets act there)
