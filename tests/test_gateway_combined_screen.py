"""The scan's input screen at the gateway: ``input_screen`` (out-of-distribution detector and
feature squeezing together) served by a real server on loopback refuses exactly the records
either of its two registered guards flags, and ``serve --from-scan`` serves it when the scan
recommended it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from finmlsec.defences import build_guard
from finmlsec.errors import ConfigError
from finmlsec.gateway.app import create_app
from finmlsec.gateway.demo import credit_scoring_model
from finmlsec.gateway.fromscan import scan_policy
from finmlsec.gateway.guards import AnyScreen, build_combined_screen
from finmlsec.gateway.policy import Policy
from finmlsec.gateway.redteam import LoopbackGateway
from finmlsec.gateway.settings import Settings

SCREEN = {"enabled": True, "defence": "input_screen",
          "params": {"random_state": 0, "squeeze_fpr": 0.2}}


def test_the_combined_screen_refuses_what_either_detector_flags(tmp_path: Path) -> None:
    m = credit_scoring_model(seed=0)
    policy = Policy.model_validate({"screening": SCREEN})
    app = create_app(Settings(db_url=f"sqlite:///{tmp_path / 'gw.db'}", policy=policy),
                     target=m.target, schema=m.schema, reference=m.train)
    gw = app.state.gateway
    assert isinstance(gw.guards.screen, AnyScreen)
    assert gw.guards.status()["screening"]["defence"] == "input_screen"
    X = m.heldout.iloc[:60].reset_index(drop=True)
    odd = m.schema.sample_uniform(20, 0)[list(X.columns)]
    frame = pd.concat([X, odd], ignore_index=True)
    rows = json.loads(frame.to_json(orient="records"))
    token = gw.db.create_key(org="bank", role="system_user").token
    with LoopbackGateway(app) as server, httpx.Client(timeout=30) as c:
        codes = [c.post(server.url, json={"record": r},
                        headers={"Authorization": f"Bearer {token}"}).status_code for r in rows]
    gw.close()
    assert set(codes) <= {200, 422}, codes
    refused = np.asarray(codes) == 422
    model = getattr(m.target, "estimator", m.target)
    ood = build_guard("input_screen.ood", random_state=0).fit(m.train).predict(frame) == -1
    sq = build_guard("input_screen.squeeze", model, fpr=0.2).fit(m.train).predict(frame) == -1
    np.testing.assert_array_equal(refused, ood | sq)
    assert (sq & ~ood).any() and (ood & ~sq).any()  # each detector refuses what the other lets in
    assert refused[60:].mean() >= 0.5 and refused[:60].mean() <= 0.4


def test_the_combined_screen_takes_the_defences_parameters() -> None:
    m = credit_scoring_model(seed=0)
    only_ood = build_combined_screen({"squeeze_levels": None, "random_state": 0}, m.target,
                                     m.train)
    assert list(only_ood.screens) == ["input_screen.ood"]
    both = build_combined_screen({"ood_quantile": 0.05, "squeeze_levels": 4}, m.target, m.train)
    assert both.screens["input_screen.ood"].quantile == 0.05
    assert both.screens["input_screen.squeeze"].levels == 4
    assert both.screens["input_screen.squeeze"].fpr == 0.05  # the defence's default
    with pytest.raises(ConfigError, match="takes ood_quantile, random_state, squeeze_levels"):
        build_combined_screen({"text": True}, m.target, m.train)
    with pytest.raises(ConfigError, match="ood_quantile"):
        build_combined_screen({"ood_quantile": 0.9}, m.target, m.train)


def test_from_scan_serves_the_scans_input_screen() -> None:
    doc = {"run": {"id": "r1"}, "threats": [
        {"decision": "mitigate", "best": ["input_screen"], "attack": "induce_false_prediction",
         "via": "model_io"}]}
    pol, on = scan_policy(doc, Policy())
    assert pol.screening.enabled and pol.screening.defence == "input_screen"
    assert pol.screening.params == {"random_state": 0}
    assert on == ["screening: input_screen (out-of-distribution detector and feature squeezing, "
                  "a record refused when either flags it) at its measured defaults (recommended "
                  "by scan r1 against induce_false_prediction@model_io)"]
    doc["threats"][0]["best"] = ["input_screen", "input_screen.ood"]
    with pytest.raises(ConfigError, match="together"):
        scan_policy(doc, Policy())
