"""Alembic environment: migrates the connection handed over by :func:`finmlsec.store.db.migrate`
(every table name, and the version table, prefixed with its ``table_prefix``)."""

from __future__ import annotations

from alembic import context

from finmlsec.store.models import Base

connection = context.config.attributes["connection"]
prefix = context.config.attributes.get("table_prefix", "")
context.configure(connection=connection, target_metadata=Base.metadata,
                  version_table=f"{prefix}alembic_version")
with context.begin_transaction():
    context.run_migrations()
