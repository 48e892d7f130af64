"""Data access: every query Greenroom runs, in one place, returning detached rows."""

from __future__ import annotations

import secrets
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Engine, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from greenroom.errors import Conflict, NotFound
from greenroom.store.models import BackgroundRow, Base, SessionRow, TemplateRow, utcnow

RowT = TypeVar("RowT", bound=Base)

OPEN_STATUSES = ("starting", "started")
# ``update_session(id, **VENDOR_CLEARED)``: the vendor session is known to be stopped
VENDOR_CLEARED: dict[str, None] = {
    "vendor": None,
    "vendor_session_id": None,
    "vendor_stop_token": None,
}


def new_id(prefix: str) -> str:
    """``<prefix>_`` and 24 random hex digits."""
    return f"{prefix}_{secrets.token_hex(12)}"


class Repo:
    """Templates, library backgrounds and sessions over one SQLAlchemy engine."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._session = sessionmaker(engine, expire_on_commit=False)

    def _get(self, db: Session, model: type[RowT], id_: str, what: str) -> RowT:
        row = db.get(model, id_)
        if row is None:
            raise NotFound(f"{what} {id_!r} not found")
        return row

    # templates ---------------------------------------------------------------------------
    def create_template(self, **fields: Any) -> TemplateRow:
        row = TemplateRow(id=new_id("tpl"), **fields)
        now = utcnow()
        row.created_at = row.updated_at = now
        self._add(row, name=fields.get("name"))
        return row

    def get_template(self, template_id: str) -> TemplateRow:
        with self._session() as db:
            return self._get(db, TemplateRow, template_id, "template")

    def list_templates(self) -> Sequence[TemplateRow]:
        with self._session() as db:
            return db.scalars(select(TemplateRow).order_by(TemplateRow.created_at)).all()

    def update_template(self, template_id: str, **fields: Any) -> TemplateRow:
        with self._session() as db:
            row = self._get(db, TemplateRow, template_id, "template")
            for key, value in fields.items():
                setattr(row, key, value)
            row.updated_at = utcnow()
            try:
                db.commit()
            except IntegrityError:
                db.rollback()
                raise self._name_taken(fields.get("name")) from None
            return row

    def delete_template(self, template_id: str) -> None:
        with self._session() as db:
            row = self._get(db, TemplateRow, template_id, "template")
            db.delete(row)
            db.commit()

    def templates_using_background(self, value: str) -> Sequence[TemplateRow]:
        with self._session() as db:
            return db.scalars(select(TemplateRow).where(TemplateRow.background == value)).all()

    # backgrounds -------------------------------------------------------------------------
    def add_background(self, row: BackgroundRow) -> BackgroundRow:
        row.created_at = utcnow()
        self._add(row)
        return row

    def get_background(self, background_id: str) -> BackgroundRow:
        with self._session() as db:
            return self._get(db, BackgroundRow, background_id, "background")

    def list_backgrounds(self) -> Sequence[BackgroundRow]:
        with self._session() as db:
            return db.scalars(select(BackgroundRow).order_by(BackgroundRow.created_at)).all()

    def delete_background(self, background_id: str) -> None:
        with self._session() as db:
            db.delete(self._get(db, BackgroundRow, background_id, "background"))
            db.commit()

    # sessions ----------------------------------------------------------------------------
    def add_session(self, row: SessionRow) -> SessionRow:
        row.created_at = utcnow()
        self._add(row)
        return row

    def get_session(self, session_id: str) -> SessionRow:
        with self._session() as db:
            return self._get(db, SessionRow, session_id, "session")

    def list_sessions(self, status: str | None = None, limit: int = 100) -> Sequence[SessionRow]:
        with self._session() as db:
            q = select(SessionRow).order_by(SessionRow.created_at.desc()).limit(limit)
            if status is not None:
                q = q.where(SessionRow.status == status)
            return db.scalars(q).all()

    def open_sessions(self, *, expired_at: datetime | None = None) -> Sequence[SessionRow]:
        """Sessions the database believes are running (starting or started); with
        ``expired_at``, only those no replica holds a lease on at that time (expired, released,
        or from before leases)."""
        q = select(SessionRow).where(SessionRow.status.in_(OPEN_STATUSES))
        if expired_at is not None:
            q = q.where(_unclaimed(expired_at))
        with self._session() as db:
            return db.scalars(q).all()

    def vendor_sessions(self) -> Sequence[SessionRow]:
        """Sessions whose vendor session may still be running (recorded, never cleared)."""
        with self._session() as db:
            q = select(SessionRow).where(SessionRow.vendor_session_id.is_not(None))
            return db.scalars(q).all()

    def update_session(self, session_id: str, **fields: Any) -> SessionRow:
        with self._session() as db:
            row = self._get(db, SessionRow, session_id, "session")
            for key, value in fields.items():
                setattr(row, key, value)
            db.commit()
            return row

    # leases (see api/services/leases.py) ---------------------------------------------------
    def close_session(self, session_id: str, owner: str, **fields: Any) -> bool:
        """Write ``fields`` (a stop) if ``owner`` holds the session or nobody does, in one
        conditional UPDATE. False: another replica took it over and records its own stop."""
        stmt = (
            update(SessionRow)
            .where(
                SessionRow.id == session_id,
                or_(SessionRow.owner == owner, SessionRow.owner.is_(None)),
            )
            .values(**fields)
            .execution_options(synchronize_session=False)
        )
        with self._session() as db:
            written = db.execute(stmt).rowcount == 1  # type: ignore[attr-defined]
            db.commit()
        if not written:
            self._get_exists(session_id)
        return written

    def renew_leases(self, owner: str, session_ids: Collection[str], until: datetime) -> set[str]:
        """Extend ``owner``'s leases on ``session_ids`` to ``until``, in one UPDATE. Returns the
        ids ``owner`` still holds: one missing was taken over by another replica."""
        if not session_ids:
            return set()
        stmt = (
            update(SessionRow)
            .where(SessionRow.owner == owner, SessionRow.id.in_(list(session_ids)))
            .values(lease_expires_at=until)
            .returning(SessionRow.id)
            .execution_options(synchronize_session=False)
        )
        with self._session() as db:
            held = set(db.scalars(stmt))
            db.commit()
        return held

    def release_leases(self, owner: str, session_ids: Collection[str] | None = None) -> int:
        """End ``owner``'s leases on its open sessions (all of them, or ``session_ids``), so any
        replica may take them over at once. Returns how many were released."""
        stmt = update(SessionRow).where(
            SessionRow.owner == owner, SessionRow.status.in_(OPEN_STATUSES)
        )
        if session_ids is not None:
            stmt = stmt.where(SessionRow.id.in_(list(session_ids)))
        stmt = stmt.values(lease_expires_at=None).execution_options(synchronize_session=False)
        with self._session() as db:
            count = int(db.execute(stmt).rowcount)  # type: ignore[attr-defined]
            db.commit()
        return count

    def take_over(
        self,
        session_id: str,
        new_owner: str,
        now: datetime,
        until: datetime,
        *,
        open_only: bool = True,
    ) -> SessionRow | None:
        """Make ``new_owner`` the holder of a session no replica holds at ``now`` (lease expired,
        released, or none), with a lease to ``until``. One conditional UPDATE: of replicas
        trying at once exactly one gets the row. Returns it, or None when another replica holds
        it (or, with ``open_only``, it is no longer starting or started)."""
        stmt = update(SessionRow).where(SessionRow.id == session_id, _unclaimed(now))
        if open_only:
            stmt = stmt.where(SessionRow.status.in_(OPEN_STATUSES))
        stmt = stmt.values(owner=new_owner, lease_expires_at=until).execution_options(
            synchronize_session=False
        )
        with self._session() as db:
            won = db.execute(stmt).rowcount == 1  # type: ignore[attr-defined]
            db.commit()
            return self._get(db, SessionRow, session_id, "session") if won else None

    # helpers -----------------------------------------------------------------------------
    def _get_exists(self, session_id: str) -> None:
        with self._session() as db:
            self._get(db, SessionRow, session_id, "session")  # NotFound for unknown ids

    def _add(self, row: Base, *, name: str | None = None) -> None:
        with self._session() as db:
            db.add(row)
            try:
                db.commit()
            except IntegrityError:
                db.rollback()
                raise self._name_taken(name) from None

    @staticmethod
    def _name_taken(name: str | None) -> Conflict:
        err = Conflict(f"a template named {name!r} already exists; pick another name")
        err.field = "name"  # type: ignore[attr-defined]
        return err


def _unclaimed(now: datetime) -> ColumnElement[bool]:
    """No replica holds the row at ``now``: no owner, a released lease, or an expired one."""
    return or_(
        SessionRow.owner.is_(None),
        SessionRow.lease_expires_at.is_(None),
        SessionRow.lease_expires_at <= now,
    )
