"""The vendor session behind a session's avatar (vendor, its session id, the token that stops
it), so a restart can stop a paid session a crashed process left running.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("vendor", sa.String(40), nullable=True))
        batch.add_column(sa.Column("vendor_session_id", sa.String(200), nullable=True))
        batch.add_column(sa.Column("vendor_stop_token", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("vendor_stop_token")
        batch.drop_column("vendor_session_id")
        batch.drop_column("vendor")
