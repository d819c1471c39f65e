"""The result store: scans, their units of work and outcomes, in SQLite or PostgreSQL."""

from finmlsec.store.db import (
    DEFAULT_URL,
    FINISHED,
    PortfolioInfo,
    PortfolioSystem,
    RunInfo,
    Store,
    UnitInfo,
    normalize_url,
)

__all__ = ["DEFAULT_URL", "FINISHED", "PortfolioInfo", "PortfolioSystem", "RunInfo", "Store",
           "UnitInfo", "normalize_url"]
