"""HeyGen Streaming API wire models (legacy ``/v1/streaming.*``, LiveKit ``version: "v2"``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class Voice(_Model):
    voice_id: str | None = None
    rate: float | None = None
    emotion: str | None = None


class NewSessionRequest(_Model):
    """``POST /v1/streaming.new``. The SDK still sends ``avatar_name`` (the old field name)."""

    quality: Literal["high", "medium", "low"] | None = None
    avatar_id: str | None = None
    avatar_name: str | None = None
    voice: Voice | None = None
    version: Literal["v2"] | None = None
    video_encoding: Literal["H264", "VP8"] | None = None
    activity_idle_timeout: int | None = Field(None, ge=30, le=3600)
    disable_idle_timeout: bool | None = None
    language: str | None = None

    @property
    def avatar(self) -> str:
        return self.avatar_id or self.avatar_name or "default"


class NewSession(_Model):
    session_id: str
    url: str
    access_token: str
    livekit_agent_token: str | None = None
    realtime_endpoint: str | None = None
    is_paid: bool | None = None
    session_duration_limit: int | None = None


class SessionIdRequest(_Model):
    session_id: str = Field(min_length=1)


class TaskRequest(SessionIdRequest):
    text: str = Field(min_length=1)
    task_mode: Literal["sync", "async"] | None = None
    # The docs name "chat"; the official SDK sends "talk". Both are accepted.
    task_type: Literal["repeat", "talk", "chat"] | None = None


class TaskResult(_Model):
    duration_ms: float | None = None
    task_id: str | None = None
