"""LiveAvatar wire models (``/v1/sessions/*``), as the vendor's OpenAPI describes them.

Only the fields Greenroom sends or reads are typed; unknown fields are kept (``extra="allow"``)
so a newer vendor answer never breaks parsing. The emulator validates requests with these.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: Envelope ``code`` the vendor uses for success (the web SDK checks for it).
SUCCESS_CODE = 1000


class StopReason(StrEnum):
    UNKNOWN = "UNKNOWN"
    USER_DISCONNECTED = "USER_DISCONNECTED"
    SERVER_ERROR = "SERVER_ERROR"
    IDLE_TIMEOUT = "IDLE_TIMEOUT"
    NO_CREDITS = "NO_CREDITS"
    USER_CLOSED = "USER_CLOSED"
    AVATAR_DELETED = "AVATAR_DELETED"
    MAX_DURATION_REACHED = "MAX_DURATION_REACHED"
    ZOMBIE_SESSION_REAP = "ZOMBIE_SESSION_REAP"
    AGENT_HANG_UP = "AGENT_HANG_UP"


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class LiveKitConfig(_Model):
    livekit_url: str = Field(min_length=1)
    livekit_room: str = Field(min_length=1)
    livekit_client_token: str = Field(min_length=1)


class VideoSettings(_Model):
    quality: Literal["very_high", "high", "medium", "low"] = "high"
    encoding: Literal["VP8", "H264"] = "H264"


class AvatarPersona(_Model):
    voice_id: str | None = None
    context_id: str | None = None
    language: str | None = None


class TokenRequest(_Model):
    """``POST /v1/sessions/token``: LITE needs ``livekit_config``, FULL needs ``avatar_persona``."""

    mode: Literal["FULL", "LITE"]
    avatar_id: str = Field(min_length=1)
    is_sandbox: bool = False
    video_settings: VideoSettings | None = None
    max_session_duration: int | None = Field(None, gt=0)
    livekit_config: LiveKitConfig | None = None
    avatar_persona: AvatarPersona | None = None
    interactivity_type: Literal["CONVERSATIONAL", "PUSH_TO_TALK"] | None = None


class SessionToken(_Model):
    session_id: str
    session_token: str


class StartedSession(_Model):
    """``POST /v1/sessions/start`` data."""

    session_id: str
    livekit_url: str | None = None
    livekit_client_token: str | None = None
    livekit_agent_token: str | None = None
    max_session_duration: int | None = None
    ws_url: str | None = None


class SessionIdRequest(_Model):
    """Session calls: the Bearer session token names the session; ``session_id`` is optional
    (LiveAvatar's web SDK sends no body at all)."""

    session_id: str | None = Field(None, min_length=1)


class StopRequest(SessionIdRequest):
    reason: StopReason = StopReason.UNKNOWN


class Envelope(_Model):
    code: int
    data: Any = None
    message: str | None = None
