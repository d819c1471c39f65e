"""The ASGI entry point uvicorn imports in every worker process: ``app_from_env`` builds the app
from the JSON configuration ``finmlsec serve`` puts in the ``FINMLSEC_GATEWAY_CONFIG`` variable
(spec path or ``demo``, trust flag, settings). Importing this module builds nothing."""

from __future__ import annotations

import json
import os
from typing import Any

from finmlsec.errors import ConfigError

ENV = "FINMLSEC_GATEWAY_CONFIG"


def serve_config(spec: str, settings: dict[str, Any], *, trust_pickle: bool = False) -> str:
    return json.dumps({"spec": spec, "settings": settings, "trust_pickle": trust_pickle})


def app_from_env() -> Any:
    from finmlsec.gateway.app import create_app
    from finmlsec.gateway.settings import Settings

    raw = os.environ.get(ENV)
    if not raw:
        raise ConfigError(f"{ENV} is not set; start the gateway with 'finmlsec serve'")
    cfg = json.loads(raw)
    settings = Settings.model_validate(cfg["settings"])
    if cfg["spec"] == "demo":
        from finmlsec.gateway.demo import credit_scoring_model

        m = credit_scoring_model()
        return create_app(settings, target=m.target, schema=m.schema, reference=m.train)
    return create_app(settings, spec=cfg["spec"], trust_pickle=bool(cfg.get("trust_pickle")))
