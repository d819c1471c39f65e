"""The ASGI entry point uvicorn imports in every worker process: ``app_from_env`` builds the app
from the JSON configuration ``finmlsec serve`` puts in the ``FINMLSEC_GATEWAY_CONFIG`` variable
(spec path or ``demo``, trust flag, settings). Importing this module builds nothing.

A server process limits the BLAS library to one thread (:func:`single_threaded_blas`): the model
thread works on small micro-batches, for which a multi-threaded BLAS on a busy machine costs
about a hundred times more in thread hand-offs than the arithmetic (a 32 x 60 by 60 x 700
product: 11 ms with two OpenBLAS threads under load, 0.08 ms with one)."""

from __future__ import annotations

import json
import os
from typing import Any

from finmlsec.errors import ConfigError

ENV = "FINMLSEC_GATEWAY_CONFIG"


def serve_config(spec: str, settings: dict[str, Any], *, trust_pickle: bool = False) -> str:
    return json.dumps({"spec": spec, "settings": settings, "trust_pickle": trust_pickle})


def single_threaded_blas() -> None:
    """Limit BLAS (OpenBLAS, MKL) in this process to one thread."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def app_from_env() -> Any:
    from finmlsec.gateway.app import create_app
    from finmlsec.gateway.settings import Settings

    raw = os.environ.get(ENV)
    if not raw:
        raise ConfigError(f"{ENV} is not set; start the gateway with 'finmlsec serve'")
    cfg = json.loads(raw)
    settings = Settings.model_validate(cfg["settings"])
    single_threaded_blas()
    if cfg["spec"] == "demo":
        from finmlsec.gateway.demo import credit_scoring_model

        m = credit_scoring_model()
        return create_app(settings, target=m.target, schema=m.schema, reference=m.train)
    return create_app(settings, spec=cfg["spec"], trust_pickle=bool(cfg.get("trust_pickle")))
