"""What ``GET /v2/streaming/sessions/{id}`` reports: the row, plus live figures while the
session runs in this process."""

from __future__ import annotations

import contextlib
from pathlib import Path

from greenroom.api.services import background_values
from greenroom.api.services.lifetime import describe
from greenroom.api.services.live import LiveSession
from greenroom.backgrounds.spec import hex_color
from greenroom.store.models import SessionRow


def background_in_use(live: LiveSession, library_root: Path) -> str:
    """The background the compositor shows (it may have been switched over the RPC)."""
    with contextlib.suppress(Exception):
        live.background = background_values.from_spec(live.compositor.background, library_root)
    return live.background


def session_view(
    row: SessionRow, live: LiveSession | None, livekit_url: str, library_root: Path
) -> dict[str, object]:
    view: dict[str, object] = {
        "session_id": row.id,
        "status": row.status,
        "stop_reason": row.stop_reason,
        "stop_description": describe(row.stop_reason),
        "error": row.error,
        "template_id": row.template_id,
        "template_name": row.template_name,
        "provider": row.provider,
        "room": row.room,
        "room_created": row.room_created,
        "livekit_url": livekit_url,
        "viewer_identity": row.viewer_identity,
        "avatar_identity": row.avatar_identity,
        "compositor_identity": row.compositor_identity,
        "avatar_state": None,
        "background": row.background,
        "key_color": None,
        "idle_timeout": row.idle_timeout,
        "max_duration": row.max_duration,
        "idle_seconds": None,
        "time_left": None,
        "time_left_reason": None,
        "first_frame_ms": row.first_frame_ms,
        "created_at": row.created_at,
        "started_at": row.started_at,
        "stopped_at": row.stopped_at,
        "metrics": None,
    }
    if live is not None and not live.stopping:
        view["background"] = background_in_use(live, library_root)
        view["avatar_state"] = str(live.avatar.state) or None
        view["idle_seconds"] = round(live.lifetime.idle_seconds(), 1)
        left, why = live.lifetime.time_left()
        view["time_left"] = round(max(left, 0.0), 1)
        view["time_left_reason"] = str(why)
        with contextlib.suppress(Exception):
            key = live.compositor.key_color
            view["key_color"] = None if key is None else hex_color(key)
        with contextlib.suppress(Exception):
            view["metrics"] = dict(live.compositor.metrics())
    return view
