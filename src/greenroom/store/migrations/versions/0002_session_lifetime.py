"""Session lifetime (an optional maximum duration per template and per session) and whether
a template lets viewers switch the background.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("templates") as batch:
        batch.add_column(sa.Column("max_duration", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("viewer_control", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("max_duration", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("max_duration")
    with op.batch_alter_table("templates") as batch:
        batch.drop_column("viewer_control")
        batch.drop_column("max_duration")
