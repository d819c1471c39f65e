"""Settings of one gateway instance (storage, shared state, tuning); the policy says what to guard.

Example:
    >>> s = Settings()
    >>> s.db_url, s.redis_url is None, s.policy.output.mode
    ('sqlite:///finmlsec-gateway.db', True, 'none')
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from finmlsec.gateway.policy import Policy


class Settings(BaseModel):
    """``db_url``: SQLAlchemy URL for keys, audit log and feedback (SQLite file by default,
    ``postgresql+psycopg://...`` for several processes or hosts). ``redis_url``: shared rate-limit,
    budget and block state (in-process memory when ``None``). ``table_prefix`` / ``redis_prefix``
    let several gateways share one database or Redis. ``metrics_listen`` (``host:port``): serve
    ``/metrics`` there, on its own listener, instead of beside the API. ``api_docs``: serve the
    interactive API pages (``/docs``, ``/redoc``), which load their scripts from a CDN; off by
    default (``/openapi.json`` is always served)."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    db_url: str = "sqlite:///finmlsec-gateway.db"
    redis_url: str | None = None
    table_prefix: str = Field(default="", pattern=r"^[a-z0-9_]{0,32}$")
    redis_prefix: str = "finmlsec:"
    policy: Policy = Policy()
    audit_batch_max: int = Field(default=1024, ge=1)
    audit_durable: bool = True
    audit_linger_seconds: float = Field(default=0.002, ge=0.0, le=0.1)
    audit_key_file: str | None = None  # see finmlsec.gateway.auditkey for the defaults
    audit_anchor: str | None = None
    audit_anchor_seconds: float = Field(default=1.0, ge=0.0)
    key_cache_seconds: float = Field(default=2.0, ge=0.0)
    # a rotated key's old token keeps working this long (clients switch without an outage)
    key_rotation_grace_seconds: float = Field(default=300.0, ge=0.0, le=604800.0)
    predict_batch_max_rows: int = Field(default=256, ge=1)
    predict_batch_linger_seconds: float = Field(default=0.002, ge=0.0, le=0.1)
    lean_predict: bool = True  # POST /v1/predict by a raw route (no dependency resolution)
    metrics_listen: str | None = Field(default=None, pattern=r"^[^:\s]+:[0-9]{1,5}$")
    api_docs: bool = False
    title: str = "finmlsec gateway"
