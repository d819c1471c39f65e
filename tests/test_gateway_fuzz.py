"""Property-based fuzz of every operation of the gateway's API from its own OpenAPI document
(schemathesis), authenticated with a key of the role each operation needs: whatever the
generated request, valid or not, the answer is never a 5xx and never violates its documented
schema."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from finmlsec.gateway.app import create_app
from finmlsec.gateway.demo import credit_scoring_model
from finmlsec.gateway.policy import Policy
from finmlsec.gateway.settings import Settings

_MODEL = credit_scoring_model(seed=0)
_DIR = Path(tempfile.mkdtemp(prefix="finmlsec-fuzz-"))
APP = create_app(
    Settings(db_url=f"sqlite:///{_DIR / 'gw.db'}", audit_durable=False,
             policy=Policy.model_validate({"extraction": {"enabled": True},
                                           "input": {"max_batch_rows": 50}})),
    target=_MODEL.target, schema=_MODEL.schema, reference=_MODEL.train,
)
_DB = APP.state.gateway.db
USER = _DB.create_key(org="bank", role="system_user").token
ADMIN = _DB.create_key(org="bank", role="admin").token
REVIEWER = _DB.create_key(org="bank", role="reviewer").token

schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_server_errors(case: schemathesis.Case) -> None:
    token = (REVIEWER if case.path.startswith("/v1/admin/feedback") else
             ADMIN if case.path.startswith("/v1/admin") else USER)
    response = case.call(headers={"Authorization": f"Bearer {token}"})
    assert response.status_code < 500, (case.method, case.path, response.status_code,
                                        response.text[:500])
    # and no answer contradicts the schema the API documents for it
    case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
