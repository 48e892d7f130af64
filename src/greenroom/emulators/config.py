"""Emulator configuration, including the error injection tests use.

Injection lives here, on the emulator's side, never in a vendor-visible request field::

    cfg = EmulatorConfig(livekit=target_server)
    cfg.fail_next(2, status=500)                  # the next two calls answer HTTP 500
    cfg.unknown_avatars.add("nobody")             # streaming.new / sessions/token -> not found
    cfg.max_concurrent = 1                        # a second live session -> concurrency limit
    cfg.sunset = True                             # HeyGen only: every call answers HTTP 410
    cfg.stall_next(1, 2.0, path="streaming.new")  # serve the next call, answer it 2 s late

``EmulatorConfig.from_env()`` reads the same from ``GREENROOM_EMULATOR_*`` variables
(``FAIL_NEXT=N:STATUS[:CODE]``, ``UNKNOWN_AVATARS=a,b``, ``MAX_CONCURRENT=n``, ``SUNSET=1``,
``API_KEY=...``, ``IDLE_TIMEOUT=s``, ``MAX_DURATION=s``, ``CORS_ORIGINS=https://a,https://b``)
for ``greenroom emulate``.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LiveKitAccess:
    """The LiveKit server an emulator hosts its own rooms on (HeyGen, LiveAvatar FULL)."""

    url: str
    api_key: str
    api_secret: str = field(repr=False)


@dataclass
class Fault:
    """Answer the next ``remaining`` matching calls with this error instead of serving them,
    or (``stall`` > 0) serve them and hold the answer back that many seconds."""

    status: int
    code: int | str | None = None
    message: str | None = None
    path: str | None = None  # only calls whose path contains this
    remaining: int = 1
    stall: float = 0.0


@dataclass
class EmulatorConfig:
    """What an emulator serves and which failures it injects.

    Attributes:
        livekit: server for emulator-hosted rooms (None: only LiveAvatar LITE works).
        api_key: the only account key accepted; None accepts any non-empty key.
        known_avatars: if set, only these avatar ids exist; others are "not found".
        unknown_avatars: avatar ids that do not exist.
        deprecated_avatars: avatar ids answered with HeyGen's "avatar version is deprecated".
        max_concurrent: live sessions allowed at once (None: unlimited).
        sunset: HeyGen: answer every call with 410, as after the Streaming API's shutdown.
        idle_timeout: seconds without activity before a session is stopped (None: the
            vendor's default, 300 s for LiveAvatar, ``activity_idle_timeout`` or 120 s for HeyGen).
        max_duration: cap on a session's life in seconds (None: the request's or unlimited).
        sandbox_duration: LiveAvatar ``is_sandbox`` sessions end after this many seconds.
        public_url: base URL clients reach the emulator at (for the ``ws_url`` it hands out).
        cors_origins: browser origins whose pages may call the emulator (with credentials);
            None: pages served from this machine (localhost, 127.0.0.1, [::1]) only; ``"*"``
            alone: any page, without credentials.
    """

    livekit: LiveKitAccess | None = None
    api_key: str | None = None
    known_avatars: set[str] | None = None
    unknown_avatars: set[str] = field(default_factory=set)
    deprecated_avatars: set[str] = field(default_factory=set)
    max_concurrent: int | None = None
    sunset: bool = False
    idle_timeout: float | None = None
    max_duration: float | None = None
    sandbox_duration: float = 60.0
    public_url: str | None = None
    cors_origins: tuple[str, ...] | None = None
    faults: list[Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fail_next(
        self,
        n: int,
        status: int,
        *,
        code: int | str | None = None,
        message: str | None = None,
        path: str | None = None,
    ) -> None:
        """Make the next ``n`` calls (optionally only those on ``path``) fail with ``status``."""
        with self._lock:
            self.faults.append(Fault(status, code, message, path, n))

    def stall_next(self, n: int, seconds: float, *, path: str | None = None) -> None:
        """Serve the next ``n`` calls (on ``path``) but answer each ``seconds`` late, as when
        a vendor acts on a request and its answer is lost to a client's timeout."""
        if seconds <= 0:
            raise ValueError("seconds must be > 0")
        with self._lock:
            self.faults.append(Fault(200, path=path, remaining=n, stall=seconds))

    def take_fault(self, path: str) -> Fault | None:
        """The fault this call should answer with, consuming one use of it."""
        with self._lock:
            for fault in self.faults:
                if fault.remaining > 0 and (fault.path is None or fault.path in path):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self.faults.remove(fault)
                    return fault
        return None

    def avatar_exists(self, avatar_id: str) -> bool:
        if avatar_id in self.unknown_avatars:
            return False
        return self.known_avatars is None or avatar_id in self.known_avatars

    def key_ok(self, key: str | None) -> bool:
        if not key:
            return False
        return self.api_key is None or key == self.api_key

    @classmethod
    def from_env(
        cls, livekit: LiveKitAccess | None = None, env: dict[str, str] | None = None
    ) -> EmulatorConfig:
        """Read ``GREENROOM_EMULATOR_*`` variables (see the module docstring)."""
        e = dict(os.environ if env is None else env)

        def get(name: str) -> str | None:
            v = e.get(f"GREENROOM_EMULATOR_{name}")
            return v.strip() if v and v.strip() else None

        def ids(name: str) -> set[str]:
            return {x.strip() for x in (get(name) or "").split(",") if x.strip()}

        cfg = cls(livekit=livekit, api_key=get("API_KEY"))
        cfg.unknown_avatars = ids("UNKNOWN_AVATARS")
        cfg.deprecated_avatars = ids("DEPRECATED_AVATARS")
        if get("KNOWN_AVATARS"):
            cfg.known_avatars = ids("KNOWN_AVATARS")
        if value := get("MAX_CONCURRENT"):
            cfg.max_concurrent = int(value)
        cfg.sunset = (get("SUNSET") or "").lower() in {"1", "true", "yes", "on"}
        if value := get("IDLE_TIMEOUT"):
            cfg.idle_timeout = float(value)
        if value := get("MAX_DURATION"):
            cfg.max_duration = float(value)
        cfg.public_url = get("PUBLIC_URL")
        if get("CORS_ORIGINS"):
            cfg.cors_origins = tuple(sorted(ids("CORS_ORIGINS")))
        spec = get("FAIL_NEXT")
        if spec:
            parts = spec.split(":")
            try:
                n, status = int(parts[0]), int(parts[1])
            except (IndexError, ValueError):
                raise ValueError(
                    f"GREENROOM_EMULATOR_FAIL_NEXT must be N:STATUS[:CODE], got {spec!r}"
                ) from None
            code: int | str | None = parts[2] if len(parts) > 2 else None
            if isinstance(code, str) and code.isdigit():
                code = int(code)
            cfg.fail_next(n, status, code=code)
        return cfg
