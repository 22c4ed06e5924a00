"""A partial index of the rows that hold evidence, with their sizes: the evidence quota's sum
reads it instead of the whole table, which grows by a row for every scored clip.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_HOLDS_EVIDENCE = sa.text("evidence_path IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_events_evidence",
        "events",
        ["evidence_bytes"],
        sqlite_where=_HOLDS_EVIDENCE,
        postgresql_where=_HOLDS_EVIDENCE,
    )


def downgrade() -> None:
    op.drop_index("ix_events_evidence", table_name="events")
