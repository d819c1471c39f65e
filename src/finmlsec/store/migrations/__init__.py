"""Alembic migrations of the result store; run automatically when a store is opened."""
