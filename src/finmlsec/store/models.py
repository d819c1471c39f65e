"""The tables of the result store (SQLAlchemy 2 declarative models).

``runs`` holds one row per scan (its options, the analysis, the plan, the summary);
``units`` one row per unit of work of a run, with its status and, once finished, its result;
``bundles`` the archives of the scanned specs and their files (``finmlsec.scan.bundle``), one per
content (SHA-256), named by the runs that scanned it (``options["bundle"]``).
Schema changes go through the Alembic migrations in ``finmlsec/store/migrations``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class RunRow(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=False))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=False), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    spec_path: Mapped[str] = mapped_column(Text)
    spec_name: Mapped[str] = mapped_column(String(200))
    profile: Mapped[str] = mapped_column(String(16))
    seed: Mapped[int] = mapped_column(Integer)
    system_type: Mapped[int | None] = mapped_column(Integer, nullable=True)
    version: Mapped[str] = mapped_column(String(32))
    options_json: Mapped[str] = mapped_column(Text)
    analysis_json: Mapped[str] = mapped_column(Text)
    plan_json: Mapped[str] = mapped_column(Text)
    diagram_svg: Mapped[str] = mapped_column(Text, default="")
    summary_json: Mapped[str | None] = mapped_column(Text, nullable=True)


class UnitRow(Base):
    __tablename__ = "units"

    run_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    )
    unit_id: Mapped[str] = mapped_column(String(300), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=False), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=False), nullable=True)
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    outcome_json: Mapped[str | None] = mapped_column(Text, nullable=True)


class BundleRow(Base):
    __tablename__ = "bundles"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=False))
    size: Mapped[int] = mapped_column(Integer)
    payload: Mapped[bytes] = mapped_column(LargeBinary)


class PortfolioRow(Base):
    """One scan of a model inventory (``finmlsec scan INVENTORY.yaml``)."""

    __tablename__ = "portfolios"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=False))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=False), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    inventory_path: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(String(200))
    digest: Mapped[str] = mapped_column(String(64))
    options_json: Mapped[str] = mapped_column(Text)
    # the invocation scanning it and until when its claim holds (renewed while it runs)
    owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=False), nullable=True)


class PortfolioSystemRow(Base):
    """One system of a portfolio: the run that scans it (None until planned) and its status."""

    __tablename__ = "portfolio_systems"

    portfolio_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("portfolios.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    spec_path: Mapped[str] = mapped_column(Text)
    entry_json: Mapped[str] = mapped_column(Text)
    run_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
