"""Portfolios: who is scanning one (``owner``) and until when the claim holds (``lease_until``).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _prefix() -> str:
    return str(op.get_context().config.attributes.get("table_prefix", ""))  # type: ignore[union-attr]


def upgrade() -> None:
    p = _prefix()
    with op.batch_alter_table(f"{p}portfolios") as batch:
        batch.add_column(sa.Column("owner", sa.String(200), nullable=True))
        batch.add_column(sa.Column("lease_until", sa.DateTime(), nullable=True))


def downgrade() -> None:
    p = _prefix()
    with op.batch_alter_table(f"{p}portfolios") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("owner")
