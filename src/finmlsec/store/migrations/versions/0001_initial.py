"""Initial tables: runs and units.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _prefix() -> str:
    return str(op.get_context().config.attributes.get("table_prefix", ""))  # type: ignore[union-attr]


def upgrade() -> None:
    p = _prefix()
    op.create_table(
        f"{p}runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("spec_path", sa.Text(), nullable=False),
        sa.Column("spec_name", sa.String(200), nullable=False),
        sa.Column("profile", sa.String(16), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("system_type", sa.Integer(), nullable=True),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("options_json", sa.Text(), nullable=False),
        sa.Column("analysis_json", sa.Text(), nullable=False),
        sa.Column("plan_json", sa.Text(), nullable=False),
        sa.Column("diagram_svg", sa.Text(), nullable=False),
        sa.Column("summary_json", sa.Text(), nullable=True),
    )
    op.create_index(f"ix_{p}runs_created_at", f"{p}runs", ["created_at"])
    op.create_table(
        f"{p}units",
        sa.Column(
            "run_id", sa.String(32), sa.ForeignKey(f"{p}runs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("unit_id", sa.String(300), primary_key=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("worker", sa.String(200), nullable=True),
        sa.Column("outcome_json", sa.Text(), nullable=True),
    )


def downgrade() -> None:
    p = _prefix()
    op.drop_table(f"{p}units")
    op.drop_index(f"ix_{p}runs_created_at", table_name=f"{p}runs")
    op.drop_table(f"{p}runs")
