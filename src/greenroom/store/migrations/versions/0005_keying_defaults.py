"""Templates made with the old chroma keyer's clip defaults (clip_black 0.06, clip_white 0.6)
get the current keyer's (0.0, 0.85).

The API stored every keying field of a new template, defaults included, and its defaults
had stayed those of the first keyer: live sessions were keyed with clip points the current
keyer was not tuned for (faint hair cut at 0.06, soft edges pushed solid from 0.6). Only a
template carrying exactly that pair is changed; any other choice is the user's and stays.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

OLD = {"clip_black": 0.06, "clip_white": 0.6}
NEW = {"clip_black": 0.0, "clip_white": 0.85}

templates = sa.table("templates", sa.column("id", sa.String), sa.column("keying", sa.JSON))


def _swap(frm: dict[str, float], to: dict[str, float]) -> None:
    conn = op.get_bind()
    for row_id, keying in conn.execute(sa.select(templates.c.id, templates.c.keying)).all():
        if isinstance(keying, dict) and all(keying.get(k) == v for k, v in frm.items()):
            conn.execute(
                templates.update().where(templates.c.id == row_id).values(keying={**keying, **to})
            )


def upgrade() -> None:
    _swap(OLD, NEW)


def downgrade() -> None:
    _swap(NEW, OLD)
