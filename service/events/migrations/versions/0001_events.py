"""The events table.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("station", sa.String(64), nullable=True),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("ratio", sa.Float, nullable=False),
        sa.Column("verdict", sa.String(8), nullable=False),
        sa.Column("span_start", sa.Float, nullable=False),
        sa.Column("span_end", sa.Float, nullable=False),
        sa.Column("worst", sa.JSON, nullable=False),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("evidence_path", sa.String(1024), nullable=True),
        sa.Column("evidence_bytes", sa.Integer, nullable=False),
        sa.Column("label", sa.String(8), nullable=True),
        sa.Column("label_note", sa.Text, nullable=True),
        sa.Column("labelled_by", sa.String(128), nullable=True),
        sa.Column("labelled_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_events_time", "events", ["time"])
    op.create_index("ix_events_station", "events", ["station"])
    op.create_index("ix_events_verdict", "events", ["verdict"])
    op.create_index("ix_events_label", "events", ["label"])
    op.create_index("ix_events_model_time", "events", ["model", "time"])


def downgrade() -> None:
    op.drop_table("events")
