"""Names and knobs of a compositor session: track names, attributes, RPC method, options."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from greenroom.backgrounds.scene import MAX_TRANSITION
from greenroom.errors import InvalidInput
from greenroom.keying import ChromaParams
from greenroom.keying.params import KEYING_MODES, KeyingMode

TRACK_NAME = "greenroom"
"""The composited video track every viewer should pick."""
AUDIO_TRACK_NAME = "greenroom-audio"
"""The avatar's voice, re-timed to match the composited video."""
RPC_SET_BACKGROUND = "greenroom.set_background"

ATTR_ROLE = "greenroom.role"
ATTR_AVATAR = "greenroom.avatar"
ATTR_BACKGROUND = "greenroom.background"
ATTR_KEY_COLOR = "greenroom.key_color"
ATTR_KEYER = "greenroom.keyer"
"""JSON: the keying mode asked for and the keyer in use (``{"mode": "auto", "in_use": ...}``)."""
ROLE_COMPOSITOR = "compositor"
ATTR_PUBLISH_ON_BEHALF = "lk.publish_on_behalf"
"""LiveKit's agents frontends take the video of the participant whose attribute names the agent."""
ATTR_OUTPUT = "greenroom.output"

IDENTITY_PREFIX = "greenroom-"
PARTICIPANT_KINDS = ("standard", "ingress", "egress", "sip", "agent", "connector", "bridge")

Codec = Literal["vp8", "h264", "vp9", "av1"]
Output = Literal["composite", "alpha_packed"]


def compositor_identity(avatar_identity: str) -> str:
    """The participant identity of the compositor for ``avatar_identity``."""
    return f"{IDENTITY_PREFIX}{avatar_identity}"


class RoomTargetLike(Protocol):
    """Where a compositor joins (``greenroom.avatars.RoomTarget`` satisfies it)."""

    url: str
    api_key: str
    api_secret: str
    room: str


@dataclass(frozen=True)
class CompositorOptions:
    """Per-session settings of a compositor.

    Attributes:
        mode: ``"chroma"`` for green-screen avatars, ``"segment"`` for avatars on an
            ordinary background, ``"auto"`` to choose per stream by looking at the avatar's
            frames (see ``greenroom.keying.auto``; the choice is in ``metrics()["keyer"]``).
        max_bitrate: bits/s of the top simulcast layer of the published track.
        max_fps: output frame-rate cap; faster input is decimated evenly.
        video_codec: codec of the published track.
        simulcast: publish simulcast layers (viewers on weak links get a smaller one).
        dynacast: encode only the simulcast layers some viewer receives (LiveKit dynacast):
            one layer while every viewer takes the full picture, more as soon as one needs
            a smaller one. Applies to rooms the compositor joins itself (``start``).
        transition: default crossfade, seconds, when the background changes.
        max_frame_age: a received frame older than this (seconds) when its turn comes is
            dropped rather than processed late; latency stays bounded, frame rate gives.
        waiting_fps: rate of the background-only frame published while the avatar is away.
        width / height: size of the waiting frame before the avatar's first frame.
        audio: re-publish the avatar's microphone, delayed to match the video path.
        lip_sync_hold: the longest a composited frame waits for its voice, seconds, when
            our receiver buffers the avatar's audio longer than its video (a loaded
            machine); 0 never holds a frame. See ``greenroom.compositor.lip_sync``.
        session_id: label of this session in logs and metrics (default ``room/avatar``).
        stats_interval: seconds between structured stats log lines (0 = never).
        reconnect_attempts: tries to rejoin after the LiveKit connection drops.
        reconnect_backoff: first and largest pause between tries, seconds.
        chroma: the chroma keyer's settings (``None``: its defaults, key colour found
            automatically); used in ``chroma`` mode.
        rpc_file_paths: let RPC callers name image/video files on this machine
            (``image:/path``). Off by default: any room participant may call the RPC, so it
            would let them open server files. The service passes library ids instead.
        viewer_control: let callers holding a viewer token (not an agent, no publish
            permission) switch the background over RPC. Off by default; the service turns
            it on when the template allows viewer control.
        rpc_rate: ``(count, seconds)``: at most ``count`` RPC background switches per
            calling participant in any ``seconds`` window; more get ``RpcError 2429``.
        rpc_max_payload: largest RPC payload accepted, bytes of UTF-8.
        avatar_kinds: participant kinds the avatar may have (every avatar token Greenroom
            mints is kind ``agent``); empty: any kind.
        avatar_attributes: attributes the avatar must carry with exactly these values
            (what its token was minted with). A participant with the avatar's identity
            that fails either check is ignored, with a warning.
        publish_on_behalf: identity of the agent the composited track stands for: the
            compositor carries ``lk.publish_on_behalf`` = this, so LiveKit's agents
            frontends (``useVoiceAssistant``, ``useAgent``) show its track as the agent's
            video. Only for a compositor with its own participant (``start``); one attached
            to the agent's own room already publishes as the agent.
        output: ``"composite"`` (the avatar over the background) or ``"alpha_packed"``
            (colour and matte side by side in one track twice as wide, for pages that
            draw the avatar transparent; the background is not used): see
            ``docs/compositor.md``.
    """

    mode: KeyingMode = "chroma"
    max_bitrate: int = 2_500_000
    max_fps: float = 30.0
    video_codec: Codec = "vp8"
    simulcast: bool = True
    dynacast: bool = False
    transition: float = 0.3
    max_frame_age: float = 0.1
    waiting_fps: float = 5.0
    width: int = 1280
    height: int = 720
    audio: bool = True
    lip_sync_hold: float = 0.12
    session_id: str | None = None
    stats_interval: float = 10.0
    reconnect_attempts: int = 8
    reconnect_backoff: tuple[float, float] = (0.5, 8.0)
    chroma: ChromaParams | None = None
    rpc_file_paths: bool = False
    viewer_control: bool = False
    rpc_rate: tuple[int, float] = (10, 10.0)
    rpc_max_payload: int = 8192
    avatar_kinds: tuple[str, ...] = ("agent",)
    avatar_attributes: Mapping[str, str] = field(default_factory=dict)
    publish_on_behalf: str | None = None
    output: Output = "composite"

    def __post_init__(self) -> None:
        if self.chroma is not None and not isinstance(self.chroma, ChromaParams):
            raise InvalidInput("chroma must be a ChromaParams", field="chroma")
        if self.mode not in KEYING_MODES:
            raise InvalidInput(f"mode must be one of {', '.join(KEYING_MODES)}", field="mode")
        if not 100_000 <= self.max_bitrate <= 50_000_000:
            raise InvalidInput("max_bitrate must be 100k..50M bits/s", field="max_bitrate")
        if not 1 <= self.max_fps <= 60:
            raise InvalidInput("max_fps must be 1..60", field="max_fps")
        if self.video_codec not in ("vp8", "h264", "vp9", "av1"):
            raise InvalidInput("video_codec must be vp8, h264, vp9 or av1", field="video_codec")
        check_transition(self.transition)
        if not 0.01 <= self.max_frame_age <= 2:
            raise InvalidInput("max_frame_age must be 0.01..2 s", field="max_frame_age")
        if not 0 <= self.lip_sync_hold <= 0.5:
            raise InvalidInput("lip_sync_hold must be 0..0.5 s", field="lip_sync_hold")
        if not 0.5 <= self.waiting_fps <= 30:
            raise InvalidInput("waiting_fps must be 0.5..30", field="waiting_fps")
        for name in ("width", "height"):
            v = getattr(self, name)
            if not (16 <= v <= 4096 and v % 2 == 0):
                raise InvalidInput(f"{name} must be an even number 16..4096", field=name)
        if self.reconnect_attempts < 0:
            raise InvalidInput("reconnect_attempts must be >= 0", field="reconnect_attempts")
        lo, hi = self.reconnect_backoff
        if not 0 < lo <= hi:
            raise InvalidInput(
                "reconnect_backoff must be (first, max) with 0 < first <= max",
                field="reconnect_backoff",
            )
        rate = self.rpc_rate
        if not (
            isinstance(rate, tuple)
            and len(rate) == 2
            and type(rate[0]) is int
            and rate[0] >= 1
            and isinstance(rate[1], int | float)
            and rate[1] > 0
        ):
            raise InvalidInput("rpc_rate must be (count >= 1, seconds > 0)", field="rpc_rate")
        if not 64 <= self.rpc_max_payload <= 15_360:  # LiveKit's own RPC limit is 15 KiB
            raise InvalidInput("rpc_max_payload must be 64..15360 bytes", field="rpc_max_payload")
        kinds = self.avatar_kinds
        if not isinstance(kinds, tuple) or not set(kinds) <= set(PARTICIPANT_KINDS):
            raise InvalidInput(
                f"avatar_kinds must be a list of {', '.join(PARTICIPANT_KINDS)}",
                field="avatar_kinds",
            )
        if not isinstance(self.avatar_attributes, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.avatar_attributes.items()
        ):
            raise InvalidInput(
                "avatar_attributes must map attribute names to string values",
                field="avatar_attributes",
            )
        on_behalf = self.publish_on_behalf
        if on_behalf is not None and (not isinstance(on_behalf, str) or not on_behalf.strip()):
            raise InvalidInput(
                "publish_on_behalf must be the agent's identity (a non-empty string)",
                field="publish_on_behalf",
            )
        if self.output not in ("composite", "alpha_packed"):
            raise InvalidInput("output must be 'composite' or 'alpha_packed'", field="output")
        if self.output == "alpha_packed" and 2 * self.width > 4096:
            raise InvalidInput(
                "width must be at most 2048 with output 'alpha_packed' (the track is twice as wide)",
                field="width",
            )


def check_transition(value: object) -> float:
    """Validate a crossfade duration in seconds."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput("transition must be a number of seconds", field="transition")
    if not 0 <= value <= MAX_TRANSITION:
        raise InvalidInput(f"transition must be 0..{MAX_TRANSITION:g} seconds", field="transition")
    return float(value)
