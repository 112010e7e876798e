"""Alembic's environment for the store: always run in code by ``hubserve.store.schema.upgrade``,
which hands over an open connection (no alembic.ini, no URL here)."""

from __future__ import annotations

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
