"""Tables: templates, library backgrounds and sessions.

Rows are plain records; the API's schemas sit in front of them. Ids are generated strings
with a type prefix (``tpl_``, ``bg_``, ``ses_``) so a wrong id in the wrong place is obvious.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


class TemplateRow(Base):
    __tablename__ = "templates"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    provider: Mapped[str] = mapped_column(String(40))
    avatar_id: Mapped[str] = mapped_column(String(200))
    voice: Mapped[str | None] = mapped_column(String(200), nullable=True)
    quality: Mapped[str] = mapped_column(String(20))
    background: Mapped[str] = mapped_column(String(300))
    keying: Mapped[dict[str, Any]] = mapped_column(JSON)
    provider_options: Mapped[dict[str, Any]] = mapped_column(JSON)
    idle_timeout: Mapped[int] = mapped_column(Integer)
    max_duration: Mapped[int | None] = mapped_column(Integer, nullable=True)
    viewer_control: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class BackgroundRow(Base):
    __tablename__ = "backgrounds"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(10))  # image | video
    format: Mapped[str] = mapped_column(String(20))  # png, jpeg, webp, mp4, webm...
    content_type: Mapped[str] = mapped_column(String(60))
    size_bytes: Mapped[int] = mapped_column(Integer)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    stored_name: Mapped[str] = mapped_column(String(80))
    thumbnail_name: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SessionRow(Base):
    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    template_id: Mapped[str] = mapped_column(String(40), index=True)
    template_name: Mapped[str] = mapped_column(String(200))
    provider: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20), index=True)  # starting|started|stopped|failed
    stop_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    room: Mapped[str] = mapped_column(String(200))
    room_created: Mapped[bool] = mapped_column(Boolean)
    viewer_identity: Mapped[str] = mapped_column(String(200))
    avatar_identity: Mapped[str | None] = mapped_column(String(200), nullable=True)
    compositor_identity: Mapped[str | None] = mapped_column(String(200), nullable=True)
    background: Mapped[str] = mapped_column(String(300))
    idle_timeout: Mapped[int] = mapped_column(Integer)
    max_duration: Mapped[int | None] = mapped_column(Integer, nullable=True)
    first_frame_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    # The paid vendor session behind the avatar, recorded the moment the vendor names it and
    # cleared once it is known to be stopped: after a crash, the next start stops what is left.
    # ``vendor_stop_token`` is a session-scoped secret; it never leaves the store.
    vendor: Mapped[str | None] = mapped_column(String(40), nullable=True)
    vendor_session_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    vendor_stop_token: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The replica (API process) that runs the session, and until when its claim holds: renewed
    # while it runs, released when it stops (see api/services/leases.py). Another replica takes
    # a session over only once the lease has ended. No owner: a row from before leases.
    owner: Mapped[str | None] = mapped_column(String(100), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
