"""Alembic's entry point: migrations run on the connection service/events/database.py hands over
(never from an alembic.ini), so the package carries everything it needs."""

from __future__ import annotations

from alembic import context

from service.events.schema import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata)
with context.begin_transaction():
    context.run_migrations()
