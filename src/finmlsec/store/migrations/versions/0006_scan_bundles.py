"""Scan bundles: the archive of a scanned spec and its files, one row per content (SHA-256).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _prefix() -> str:
    return str(op.get_context().config.attributes.get("table_prefix", ""))  # type: ignore[union-attr]


def upgrade() -> None:
    op.create_table(
        f"{_prefix()}bundles",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table(f"{_prefix()}bundles")
