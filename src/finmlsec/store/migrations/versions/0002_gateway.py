"""The gateway's tables: API keys, the audit log and its head, feedback, settings.

A database whose gateway tables were created before they joined the migration history (by the
gateway itself, on first use) keeps them: only missing tables and rows are created.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def _prefix() -> str:
    return str(op.get_context().config.attributes.get("table_prefix", ""))  # type: ignore[union-attr]


def _tables(p: str) -> list[tuple[str, list[sa.Column]]]:
    return [
        (f"{p}gw_api_keys", [
            sa.Column("key_id", sa.String(32), primary_key=True),
            sa.Column("token_hash", sa.String(64), nullable=False),
            sa.Column("org", sa.String(200), nullable=False),
            sa.Column("role", sa.String(40), nullable=False),
            sa.Column("name", sa.String(200), nullable=False),
            sa.Column("created", sa.String(40), nullable=False),
            sa.Column("revoked", sa.String(40), nullable=True),
        ]),
        (f"{p}gw_audit", [
            sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
            sa.Column("body", sa.Text(), nullable=False),
            sa.Column("hash", sa.String(64), nullable=False),
        ]),
        (f"{p}gw_audit_head", [
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
            sa.Column("seq", sa.Integer(), nullable=False),
            sa.Column("hash", sa.String(64), nullable=False),
        ]),
        (f"{p}gw_feedback", [
            sa.Column("id", sa.String(40), primary_key=True),
            sa.Column("created", sa.String(40), nullable=False),
            sa.Column("key_id", sa.String(32), nullable=False),
            sa.Column("org", sa.String(200), nullable=False),
            sa.Column("record", sa.Text(), nullable=False),
            sa.Column("label", sa.String(200), nullable=False),
            sa.Column("model_label", sa.String(200), nullable=False),
            sa.Column("model_confidence", sa.String(40), nullable=False),
            sa.Column("flags", sa.Text(), nullable=False),
            sa.Column("status", sa.String(20), nullable=False),
            sa.Column("reviewed_by", sa.String(200), nullable=True),
            sa.Column("reviewed_at", sa.String(40), nullable=True),
            sa.Column("note", sa.Text(), nullable=True),
        ]),
        (f"{p}gw_settings", [
            sa.Column("name", sa.String(40), primary_key=True),
            sa.Column("value", sa.Text(), nullable=False),
        ]),
    ]


def upgrade() -> None:
    p = _prefix()
    bind = op.get_bind()
    existing = set(sa.inspect(bind).get_table_names())
    for name, cols in _tables(p):
        if name not in existing:
            op.create_table(name, *cols)
    head = sa.table(f"{p}gw_audit_head", sa.column("id"), sa.column("seq"), sa.column("hash"))
    if bind.execute(sa.select(head.c.id)).first() is None:
        bind.execute(sa.insert(head).values(id=1, seq=0, hash=GENESIS))
    settings = sa.table(f"{p}gw_settings", sa.column("name"), sa.column("value"))
    if bind.execute(sa.select(settings.c.value).where(settings.c.name == "digest_salt")).first() is None:
        bind.execute(sa.insert(settings).values(name="digest_salt", value=secrets.token_hex(32)))


def downgrade() -> None:
    p = _prefix()
    for name, _cols in reversed(_tables(p)):
        op.drop_table(name)
