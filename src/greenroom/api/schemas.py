"""Request and response bodies. ``*Create``/``*Update`` come in, ``*Public`` goes out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

HexColor = Annotated[str, Field(pattern=r"^#[0-9a-fA-F]{6}$", examples=["#00b140"])]
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")]
Identity = Annotated[
    str,
    Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@-]+$", examples=["viewer-1"]),
]
BackgroundValue = Annotated[
    str,
    Field(
        min_length=1,
        max_length=300,
        description=(
            "`#RRGGBB` (or `color:#RRGGBB`), a library id `bg_…` (or `library:bg_…`), "
            "`blur` / `blur:<radius 1-100>`, or `none` (the avatar's own picture)."
        ),
        examples=["#0044ff", "blur:25", "none"],
    ),
]
Quality = Literal["low", "medium", "high"]
IdleTimeout = Annotated[
    int,
    Field(
        ge=1,
        le=86400,
        description="Seconds without activity (speak, interrupt, keep_alive, background "
        "change, the avatar speaking) before the session stops (`idle_timeout`).",
    ),
]
MaxDuration = Annotated[
    int,
    Field(
        ge=1,
        le=7 * 86400,
        description="Seconds after which the session stops whatever happens (`max_duration`).",
    ),
]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KeyingSettings(Strict):
    """How the avatar is cut out of its own background (the chroma keyer's settings)."""

    mode: Literal["auto", "chroma", "segment"] = Field(
        "chroma",
        description="`chroma` for green-screen avatars, `segment` for any other, `auto` to "
        "look at the avatar's frames and pick one per stream (the choice is in the "
        "session's `metrics.keyer`).",
    )
    key_color: Annotated[str, Field(pattern=r"^(auto|#[0-9a-fA-F]{6})$")] = Field(
        "auto", description="`auto` finds the screen colour in the picture; or `#RRGGBB`."
    )
    # the defaults are ChromaParams' (tests/api/test_templates.py holds them equal)
    clip_black: float = Field(
        0.0, ge=0.0, le=0.9, description="Key value at or below which a pixel is pure screen."
    )
    clip_white: float = Field(
        0.85, ge=0.1, le=1.0, description="Key value at or above which a pixel is pure avatar."
    )
    choke: float = Field(
        0.0, ge=-0.5, le=0.5, description="Positive eats into the avatar's edge, negative grows it."
    )
    despill: float = Field(1.0, ge=0.0, le=1.0, description="How much screen colour to remove.")
    despill_luma: float = Field(
        1.0, ge=0.0, le=1.0, description="How much of the spill's brightness to put back."
    )
    temporal: float = Field(
        0.5, ge=0.0, le=0.95, description="How strongly the matte follows the previous frame."
    )


# Provider arguments a template must never set: credentials and endpoints come from the
# environment (a stored base_url would send our vendor key elsewhere), the rest is internal.
RESERVED_PROVIDER_OPTIONS = frozenset(
    {
        "api_key",
        "base_url",
        "client",
        "retry",
        "settings",
        "renderer",
        "target",
        "on_vendor_session",
    }
)


def _no_reserved_options(options: dict[str, object]) -> dict[str, object]:
    reserved = sorted(RESERVED_PROVIDER_OPTIONS & set(options))
    if reserved:
        raise ValueError(
            f"{', '.join(reserved)} cannot be set in a template: vendor keys and URLs come "
            "from the environment (GREENROOM_<VENDOR>_API_KEY, GREENROOM_<VENDOR>_BASE_URL)"
        )
    return options


ProviderOptions = Annotated[
    dict[
        Annotated[str, Field(min_length=1, max_length=64)],
        Annotated[str, Field(max_length=1000)] | int | float | bool,
    ],
    AfterValidator(_no_reserved_options),
]


class TemplateBase(Strict):
    provider: str = Field("local", min_length=1, max_length=40, examples=["local"])
    avatar_id: str = Field("default", min_length=1, max_length=200)
    voice: str | None = Field(None, min_length=1, max_length=200, examples=["en-us"])
    quality: Quality = "high"
    background: BackgroundValue = "none"
    keying: KeyingSettings = Field(default_factory=lambda: KeyingSettings.model_validate({}))
    provider_options: ProviderOptions = Field(
        default_factory=dict, description="Extra provider settings, passed through."
    )
    idle_timeout: IdleTimeout = 300
    max_duration: MaxDuration | None = None
    viewer_control: bool = Field(
        True,
        description="Viewers (the viewer page, a viewer token) may switch the background "
        "over the compositor's RPC; false: only the API may.",
    )


class TemplateCreate(TemplateBase):
    name: Name


class TemplateUpdate(Strict):
    """Only the fields given change."""

    name: Name | None = None
    provider: str | None = Field(None, min_length=1, max_length=40)
    avatar_id: str | None = Field(None, min_length=1, max_length=200)
    voice: str | None = Field(None, min_length=1, max_length=200)
    quality: Quality | None = None
    background: BackgroundValue | None = None
    keying: KeyingSettings | None = None
    provider_options: ProviderOptions | None = None
    idle_timeout: IdleTimeout | None = None
    max_duration: MaxDuration | None = Field(None, description="`null` removes the limit.")
    viewer_control: bool | None = None


class TemplatePublic(TemplateBase):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    created_at: datetime
    updated_at: datetime


class TemplateList(BaseModel):
    templates: list[TemplatePublic]


class BackgroundPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    kind: Literal["image", "video"]
    format: str
    content_type: str
    size_bytes: int
    width: int
    height: int
    duration_s: float | None
    created_at: datetime
    url: str = Field(description="Download the file (API key needed).")
    thumbnail_url: str = Field(description="A small JPEG preview (API key needed).")


class BackgroundList(BaseModel):
    backgrounds: list[BackgroundPublic]


class SessionCreate(Strict):
    template_id: str = Field(min_length=1, max_length=40)
    voice_id: str | None = Field(None, min_length=1, max_length=200)
    text: str | None = Field(
        None, min_length=1, max_length=100_000, description="Spoken once the stream is up."
    )
    livekit_room: Identity | None = Field(
        None, description="Join this room; default: a new room Greenroom creates and deletes."
    )
    livekit_identity: Identity | None = Field(
        None, description="Identity of the viewer in the returned `access_token`."
    )
    idle_timeout: IdleTimeout | None = Field(None, description="Default: the template's.")
    max_duration: MaxDuration | None = Field(None, description="Default: the template's.")


class SessionStarted(BaseModel):
    session_id: str
    status: Literal["started"]
    stream_url: str = Field(description="LiveKit WebSocket URL to join with `access_token`.")
    livekit_url: str
    access_token: str = Field(description="Subscribe-only, expiring viewer token.")
    access_token_expires_at: datetime
    viewer_url: str = Field(description="A web page showing the stream (token in the fragment).")
    room: str
    viewer_identity: str
    avatar_identity: str
    compositor_identity: str
    background: str
    idle_timeout: int
    max_duration: int | None
    warnings: list[str] = Field(
        default_factory=list,
        description="Things that may cut the session short, e.g. a caller-named room whose "
        "LiveKit timeouts are shorter than the session may live.",
    )


class SessionPublic(BaseModel):
    session_id: str
    status: Literal["starting", "started", "stopped", "failed"]
    stop_reason: str | None = Field(description="Why it ended; see docs/api.md.")
    stop_description: str | None = Field(description="`stop_reason` in words.")
    error: str | None
    template_id: str
    template_name: str
    provider: str
    room: str
    room_created: bool
    livekit_url: str
    viewer_identity: str
    avatar_identity: str | None
    compositor_identity: str | None
    avatar_state: str | None
    background: str
    key_color: str | None
    idle_timeout: int
    max_duration: int | None
    idle_seconds: float | None
    time_left: float | None = Field(description="Seconds until it stops by itself (running).")
    time_left_reason: Literal["idle_timeout", "max_duration"] | None
    first_frame_ms: float | None
    created_at: datetime
    started_at: datetime | None
    stopped_at: datetime | None
    metrics: dict[str, Any] | None


class SessionList(BaseModel):
    sessions: list[SessionPublic]


class SpeakRequest(Strict):
    text: str = Field(min_length=1, max_length=100_000)
    task_type: Literal["repeat", "talk"] = "repeat"


class BackgroundObject(Strict):
    """The object form of a background (as the LiveKit RPC accepts it), minus file paths."""

    kind: Literal["color", "image", "video", "blur", "none"]
    color: HexColor | None = None
    blur_radius: int | None = Field(None, ge=1, le=100)
    library_id: str | None = Field(None, min_length=1, max_length=40)


class BackgroundChange(Strict):
    background: BackgroundValue | BackgroundObject
    transition: float = Field(0.3, ge=0.0, le=5.0, description="Crossfade seconds.")


class ActionResult(BaseModel):
    session_id: str
    status: str
    detail: str | None = None


class ErrorBody(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class Health(BaseModel):
    """What an unauthenticated probe may learn: up, and which version."""

    status: Literal["ok"]
    version: str
