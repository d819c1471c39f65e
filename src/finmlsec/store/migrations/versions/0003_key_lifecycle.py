"""API key lifecycle: an expiry, and the admin who asked for an admin key awaiting approval.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _prefix() -> str:
    return str(op.get_context().config.attributes.get("table_prefix", ""))  # type: ignore[union-attr]


def upgrade() -> None:
    with op.batch_alter_table(f"{_prefix()}gw_api_keys") as t:
        t.add_column(sa.Column("expires", sa.String(40), nullable=True))
        t.add_column(sa.Column("pending_by", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table(f"{_prefix()}gw_api_keys") as t:
        t.drop_column("pending_by")
        t.drop_column("expires")
