"""API key rotation with a grace period: the replaced token's hash and until when it still works.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _prefix() -> str:
    return str(op.get_context().config.attributes.get("table_prefix", ""))  # type: ignore[union-attr]


def upgrade() -> None:
    with op.batch_alter_table(f"{_prefix()}gw_api_keys") as t:
        t.add_column(sa.Column("prev_token_hash", sa.String(64), nullable=True))
        t.add_column(sa.Column("prev_until", sa.String(40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table(f"{_prefix()}gw_api_keys") as t:
        t.drop_column("prev_until")
        t.drop_column("prev_token_hash")
