"""A policy's records-per-day cap for an organisation, across all its keys and replicas (two
gateway processes' apps on one database), kept across a restart."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from finmlsec.gateway.app import create_app
from finmlsec.gateway.demo import DemoModel, credit_scoring_model
from finmlsec.gateway.policy import Policy
from finmlsec.gateway.settings import Settings
from finmlsec.store.gateway import GatewayDB

POLICY = {"budget": {"per_day": 1000, "org_per_day": 100}}


@pytest.fixture(scope="module")
def model() -> DemoModel:
    return credit_scoring_model(seed=0)


def _app(model: DemoModel, url: str) -> Any:
    return create_app(Settings(db_url=url, policy=Policy.model_validate(POLICY)),
                      target=model.target, schema=model.schema, reference=model.train)


def _send(apps: list[Any], calls: list[tuple[int, str, list[dict[str, Any]]]]
          ) -> list[httpx.Response]:
    """``calls``: (app index, token, records), sent in order."""
    async def main() -> list[httpx.Response]:
        out = []
        async with contextlib.AsyncExitStack() as stack:
            clients = []
            for a in apps:
                await stack.enter_async_context(a.router.lifespan_context(a))
                clients.append(await stack.enter_async_context(httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=a), base_url="http://gw")))
            for i, token, recs in calls:
                out.append(await clients[i].post(
                    "/v1/predict", json={"records": recs},
                    headers={"Authorization": f"Bearer {token}"}))
        return out

    return asyncio.run(main())


def test_two_keys_of_one_org_share_its_daily_budget_across_replicas(model: DemoModel,
                                                                    tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gw.db'}"
    db = GatewayDB(url)
    a = db.create_key(org="broker", role="system_user").token
    b = db.create_key(org="broker", role="system_user").token
    other = db.create_key(org="bank", role="system_user").token
    db.dispose()
    recs = json.loads(model.heldout.iloc[:60].to_json(orient="records"))
    apps = [_app(model, url), _app(model, url)]
    r = _send(apps, [(0, a, recs[:60]), (1, b, recs[:30]), (1, b, recs[:20]),
                     (0, other, recs[:60]), (0, a, recs[:10]), (1, a, recs[:1])])
    assert [x.status_code for x in r] == [200, 200, 429, 200, 200, 429]
    assert "all keys of the organisation" in r[2].json()["detail"]
    assert int(r[2].headers["retry-after"]) > 0
    for app in apps:
        app.state.gateway.close()
    # a restarted gateway: the organisation's day is still spent, the other org's is not
    again = [_app(model, url)]
    r = _send(again, [(0, b, recs[:1]), (0, other, recs[:40])])
    assert [x.status_code for x in r] == [429, 200]
    again[0].state.gateway.close()


def test_without_an_org_cap_keys_only_have_their_own(model: DemoModel, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gw.db'}"
    db = GatewayDB(url)
    a = db.create_key(org="broker", role="system_user").token
    b = db.create_key(org="broker", role="system_user").token
    db.dispose()
    recs = json.loads(model.heldout.iloc[:60].to_json(orient="records"))
    app = create_app(Settings(db_url=url, policy=Policy.model_validate(
        {"budget": {"per_day": 100}})), target=model.target, schema=model.schema)
    r = _send([app], [(0, a, recs), (0, b, recs), (0, a, recs)])
    assert [x.status_code for x in r] == [200, 200, 429]
    app.state.gateway.close()
