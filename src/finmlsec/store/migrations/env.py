"""Alembic environment: migrates the connection handed over by :mod:`finmlsec.store.db`."""

from __future__ import annotations

from alembic import context

from finmlsec.store.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata)
with context.begin_transaction():
    context.run_migrations()
