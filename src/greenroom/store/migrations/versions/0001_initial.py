"""Templates, library backgrounds and sessions.

Revision ID: 0001
Revises:
Create Date: 2025-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "templates",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("provider", sa.String(40), nullable=False),
        sa.Column("avatar_id", sa.String(200), nullable=False),
        sa.Column("voice", sa.String(200), nullable=True),
        sa.Column("quality", sa.String(20), nullable=False),
        sa.Column("background", sa.String(300), nullable=False),
        sa.Column("keying", sa.JSON(), nullable=False),
        sa.Column("provider_options", sa.JSON(), nullable=False),
        sa.Column("idle_timeout", sa.Integer(), nullable=False),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("updated_at", ts, nullable=False),
    )
    op.create_table(
        "backgrounds",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("format", sa.String(20), nullable=False),
        sa.Column("content_type", sa.String(60), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("stored_name", sa.String(80), nullable=False),
        sa.Column("thumbnail_name", sa.String(80), nullable=False),
        sa.Column("created_at", ts, nullable=False),
    )
    op.create_table(
        "sessions",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("template_id", sa.String(40), nullable=False),
        sa.Column("template_name", sa.String(200), nullable=False),
        sa.Column("provider", sa.String(40), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("stop_reason", sa.String(200), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("room", sa.String(200), nullable=False),
        sa.Column("room_created", sa.Boolean(), nullable=False),
        sa.Column("viewer_identity", sa.String(200), nullable=False),
        sa.Column("avatar_identity", sa.String(200), nullable=True),
        sa.Column("compositor_identity", sa.String(200), nullable=True),
        sa.Column("background", sa.String(300), nullable=False),
        sa.Column("idle_timeout", sa.Integer(), nullable=False),
        sa.Column("first_frame_ms", sa.Float(), nullable=True),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("started_at", ts, nullable=True),
        sa.Column("stopped_at", ts, nullable=True),
    )
    op.create_index("ix_sessions_template_id", "sessions", ["template_id"])
    op.create_index("ix_sessions_status", "sessions", ["status"])


def downgrade() -> None:
    op.drop_table("sessions")
    op.drop_table("backgrounds")
    op.drop_table("templates")
