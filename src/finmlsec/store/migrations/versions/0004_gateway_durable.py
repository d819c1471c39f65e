"""The gateway's durable limits: budget counters, blocks and flags, and the extraction
detector's per-client query log (``finmlsec.gateway.durable``).

Until this revision the gateway created these tables itself, outside the migration history; a
database that has them keeps them (and their rows): only missing tables are created.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _prefix() -> str:
    return str(op.get_context().config.attributes.get("table_prefix", ""))  # type: ignore[union-attr]


def upgrade() -> None:
    p = _prefix()
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if f"{p}gw_counters" not in existing:
        op.create_table(f"{p}gw_counters",
                        sa.Column("key", sa.String(300), primary_key=True),
                        sa.Column("idx", sa.Integer(), nullable=False),
                        sa.Column("used", sa.Integer(), nullable=False))
    if f"{p}gw_flags" not in existing:
        op.create_table(f"{p}gw_flags",
                        sa.Column("key", sa.String(300), primary_key=True),
                        sa.Column("value", sa.String(40), nullable=False),
                        sa.Column("until", sa.Float(), nullable=True))
    if f"{p}gw_prada_log" not in existing:
        op.create_table(f"{p}gw_prada_log",
                        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
                        sa.Column("client", sa.String(300), nullable=False),
                        sa.Column("data", sa.LargeBinary(), nullable=True),
                        sqlite_autoincrement=True)  # ids never reused: replicas read after id N
        op.create_index(f"ix_{p}gw_prada_log_client", f"{p}gw_prada_log", ["client"])


def downgrade() -> None:
    p = _prefix()
    op.drop_index(f"ix_{p}gw_prada_log_client", table_name=f"{p}gw_prada_log")
    for name in ("gw_prada_log", "gw_flags", "gw_counters"):
        op.drop_table(f"{p}{name}")
