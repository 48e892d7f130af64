"""Settings, read once from ``GREENROOM_*`` environment variables and an optional ``.env``.

Secrets are ``SecretStr``: they never appear in ``repr``, logs or error messages.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from greenroom.errors import ConfigError

DEFAULT_DATA_DIR = Path.home() / ".local" / "share" / "greenroom"
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "greenroom"
#: ``min_playout_delay`` of the rooms Greenroom creates, ms (docs/compositor.md, "Lip-sync").
#: Receivers (the compositor, then each viewer) hold the voice in an audio jitter buffer
#: and hardly hold the picture; asking them to hold video this long brings lips and voice
#: together. Measured with ``bench/av_browser.py`` (docs/benchmarks.md).
VIDEO_PLAYOUT_DELAY_MS = 70
#: ``max_playout_delay`` that goes with it: LiveKit raises the delay with the jitter it sees
#: up to this (the value in LiveKit's sample configuration).
VIDEO_PLAYOUT_DELAY_MAX_MS = 2000


class Settings(BaseSettings):
    """Everything configurable about a Greenroom process."""

    model_config = SettingsConfigDict(
        env_prefix="GREENROOM_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    livekit_url: str = Field("ws://127.0.0.1:7880", description="LiveKit server WebSocket URL")
    livekit_public_url: str | None = Field(
        None, description="URL clients use to reach LiveKit, if different from livekit_url"
    )
    livekit_api_key: str = "devkey"
    livekit_api_secret: SecretStr = SecretStr("secret")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite file")
    data_dir: Path = DEFAULT_DATA_DIR
    cache_dir: Path = DEFAULT_CACHE_DIR
    api_key: SecretStr | None = Field(None, description="Key clients send to the Greenroom API")
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    public_base_url: str | None = Field(None, description="Base URL of the API as clients see it")
    liveavatar_api_key: SecretStr | None = None
    liveavatar_base_url: str = "https://api.liveavatar.com"
    heygen_api_key: SecretStr | None = None
    heygen_base_url: str = "https://api.heygen.com"
    # ---- exposure and upload limits (docs/security.md lists each with its test) ----
    metrics_token: SecretStr | None = Field(
        None, description="Bearer token Prometheus may send to /metrics instead of the API key"
    )
    metrics_public: bool = Field(False, description="Serve /metrics without any credential")
    upload_max_bytes: int = Field(100 * 1024 * 1024, gt=0, description="Bytes per upload")
    upload_max_pixels: int = Field(40_000_000, gt=0, description="Pixels per uploaded image")
    upload_max_video_pixels: int = Field(3840 * 2160, gt=0, description="Pixels per video frame")
    upload_max_video_seconds: float = Field(600.0, gt=0, description="Seconds per video")
    library_max_items: int = Field(200, gt=0, description="Backgrounds the API key may keep")
    library_max_bytes: int = Field(
        2 * 1024**3, gt=0, description="Bytes of backgrounds the API key may keep"
    )
    # session lifetime and limits (docs/api.md, "Session lifetime")
    room_timeout: int = Field(
        86400,
        ge=1,
        le=2**31,
        description="empty_timeout/departure_timeout of the rooms Greenroom creates, seconds "
        "(raised to a session's idle_timeout and max_duration when those are longer); rooms "
        "are deleted when their session stops, so this only bounds rooms a crash leaves",
    )
    video_playout_delay_ms: int = Field(
        VIDEO_PLAYOUT_DELAY_MS,
        ge=0,
        le=VIDEO_PLAYOUT_DELAY_MAX_MS,
        description="min_playout_delay of the rooms Greenroom creates, ms: every receiver "
        "holds video this long, so it meets the voice its audio jitter buffer holds back "
        "(lip-sync); 0 leaves the LiveKit server's own setting",
    )
    livekit_unreachable_timeout: float = Field(
        30.0, gt=0, description="Seconds the LiveKit API may fail to answer before sessions stop"
    )
    max_sessions: int = Field(20, ge=1, description="Concurrent sessions per process")
    max_sessions_per_key: int = Field(10, ge=1, description="Concurrent sessions per API key")
    # scale-out (docs/deploy.md)
    compositor: Literal["inprocess", "dispatch"] = Field(
        "inprocess",
        description="Where each session's compositor (and built-in avatar) runs: in this "
        "process, or as a LiveKit Agents job on a `greenroom worker` (explicit dispatch)",
    )
    replica_id: str | None = Field(
        None,
        max_length=100,
        description="This API process's name in session leases (default: host name and pid)",
    )
    lease_seconds: float = Field(
        30.0,
        ge=3.0,
        le=3600.0,
        description="How long a replica's claim on its sessions lasts unless renewed (renewed "
        "every third of it); another replica takes over a session only once it has expired",
    )
    viewer_can_restart: bool = Field(
        False, description="The viewer page offers to start a new session when one ends (demo)"
    )

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'greenroom.db'}"

    @property
    def client_livekit_url(self) -> str:
        return self.livekit_public_url or self.livekit_url


DEV_LIVEKIT_SECRET = "secret"  # what ``livekit-server --dev`` and our defaults use
SECRET_HINT = (
    "generate one with `greenroom secret` "
    "(or python -c 'import secrets; print(secrets.token_urlsafe(32))')"
)


class UnsafeExposure(ConfigError):
    """The development LiveKit credentials would be reachable from beyond this machine."""

    code = "unsafe_exposure"


def is_loopback(host: str) -> bool:
    """True for ``127.0.0.0/8``, ``::1`` and ``localhost``; False for ``0.0.0.0``, ``""``, names."""
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def url_host(url: str) -> str:
    """The host part of a URL (``ws://10.0.0.5:7880`` -> ``10.0.0.5``), or ``""``."""
    return urlsplit(url).hostname or ""


def check_exposure(settings: Settings, *hosts: str) -> None:
    """Refuse the development LiveKit secret when any of ``hosts`` is beyond loopback.

    ``hosts`` are the addresses a command binds or the LiveKit hosts it relies on. With the
    well-known secret anyone who reaches them could mint a token for any room.

    Raises:
        UnsafeExposure: the message names ``GREENROOM_LIVEKIT_API_SECRET`` and how to make one.
    """
    secret = settings.livekit_api_secret.get_secret_value()
    if secret and secret != DEV_LIVEKIT_SECRET:
        return
    exposed = [h for h in hosts if not is_loopback(h)]
    if not exposed:
        return
    where = ", ".join(repr(h) if h else "'' (every interface)" for h in exposed)
    raise UnsafeExposure(
        f"refusing to run on {where} with the development LiveKit credentials "
        "(devkey/secret): anyone who can reach it could mint LiveKit tokens for any room. "
        "Set GREENROOM_LIVEKIT_API_SECRET (and GREENROOM_LIVEKIT_API_KEY) to your LiveKit "
        f"server's key pair; {SECRET_HINT}. Or stay on 127.0.0.1."
    )


#: settings whose value an error message leaves out
_UNSHOWN = ("key", "secret", "token", "password", "database_url")


def get_settings() -> Settings:
    """Read settings from the environment now (no module-level singleton, so tests stay apart).

    Raises:
        ConfigError: a variable is invalid; the message names each one and the reason.
    """
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for e in exc.errors():
            name = "_".join(str(p) for p in e["loc"])
            # a secret (or a database URL, which may hold a password) is never echoed
            shown = "" if any(w in name for w in _UNSHOWN) else f" (got {e['input']!r})"
            problems.append(f"GREENROOM_{name.upper()}: {e['msg']}{shown}")
        raise ConfigError(f"invalid setting: {'; '.join(problems)}") from None
