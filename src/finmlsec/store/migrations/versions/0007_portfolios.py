"""Portfolios: one scan of a model inventory, and which run scanned each of its systems.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _prefix() -> str:
    return str(op.get_context().config.attributes.get("table_prefix", ""))  # type: ignore[union-attr]


def upgrade() -> None:
    p = _prefix()
    op.create_table(
        f"{p}portfolios",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("inventory_path", sa.Text(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("options_json", sa.Text(), nullable=False),
    )
    op.create_index(f"ix_{p}portfolios_created_at", f"{p}portfolios", ["created_at"])
    op.create_table(
        f"{p}portfolio_systems",
        sa.Column("portfolio_id", sa.String(32),
                  sa.ForeignKey(f"{p}portfolios.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("spec_path", sa.Text(), nullable=False),
        sa.Column("entry_json", sa.Text(), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
    )


def downgrade() -> None:
    p = _prefix()
    op.drop_table(f"{p}portfolio_systems")
    op.drop_index(f"ix_{p}portfolios_created_at", f"{p}portfolios")
    op.drop_table(f"{p}portfolios")
