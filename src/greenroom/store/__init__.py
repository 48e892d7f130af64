"""The database: SQLAlchemy 2 models, a small repository, Alembic migrations run on start.

SQLite file in the data dir by default; PostgreSQL (or anything SQLAlchemy speaks) by URL.
"""

from greenroom.store.db import connect, migrate
from greenroom.store.repo import Repo

__all__ = ["Repo", "connect", "migrate"]
