"""The store's failures as callers should see them: the database is unavailable, try again.

SQLAlchemy's errors carry the SQL statement and its parameters in their text; they are
translated here once (:func:`unavailable`), and only the driver's own reason is kept.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from greenroom.errors import GreenroomError

RETRY_AFTER = 5  # seconds a caller is told to wait before trying again


class DatabaseUnavailable(GreenroomError):
    """The database did not answer (locked past the busy timeout, down, restarting)."""

    code = "database_unavailable"
    status = 503

    def __init__(self, message: str | None = None, *, retry_after: int = RETRY_AFTER):
        super().__init__(message or "the database is unavailable; try again shortly")
        self.retry_after = retry_after


def is_unavailable(exc: BaseException) -> bool:
    """True for errors that mean the database cannot be reached or is locked, not that a
    query is wrong (those stay internal errors)."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def reason(exc: BaseException) -> str:
    """The driver's reason, without the statement: ``database is locked``."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
