"""Find, build and run the real LiveKit server as a managed child process.

The binary is looked up on ``PATH`` (``livekit-server``), then in the cache folder
(``<cache>/livekit-server-v1.13.5/server``). If neither exists, :func:`ensure_binary`
builds it once with ``go install``. :class:`LiveKitServer` starts it bound to loopback
with ``node_ip: 127.0.0.1`` (so it never reaches for public STUN servers), picks free
ports when the defaults are taken, waits until the RoomService answers, and stops it.

Media stays on loopback too: ICE-TCP is off and UDP is bound to 127.0.0.1 only.

Given a Redis address it runs as one node of several: each node has its own HTTP and UDP
ports, rooms are pinned to one node, and any node routes a client to the room's
node through Redis (see ``docs/deploy.md``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
from livekit import api

from greenroom import tokens as _tokens  # noqa: F401  (dev-secret warning filter)
from greenroom.config import DEFAULT_CACHE_DIR
from greenroom.errors import SetupError

LIVEKIT_VERSION = "v1.13.5"
LIVEKIT_MODULE = "github.com/livekit/livekit-server/cmd/server"
DEFAULT_PORT = 7880
DEV_API_KEY = "devkey"
DEV_API_SECRET = "secret"
PORT_TRIES = 3  # starts on fresh RTC ports when one was taken meanwhile

INSTALL_HELP = (
    "Install the LiveKit server in one of these ways:\n"
    "  - put a release binary named 'livekit-server' on PATH (from the LiveKit releases page),\n"
    "  - use a package manager (for example 'brew install livekit'),\n"
    f"  - or install Go 1.26+ and run 'make setup', which builds {LIVEKIT_MODULE}@{LIVEKIT_VERSION}."
)


def cache_binary_path(cache_dir: Path = DEFAULT_CACHE_DIR) -> Path:
    """Where ``go install`` puts the server (the Go module's binary is named ``server``)."""
    return cache_dir / f"livekit-server-{LIVEKIT_VERSION}" / "server"


def find_binary(cache_dir: Path = DEFAULT_CACHE_DIR) -> Path | None:
    """Return the LiveKit server binary on PATH or in the cache, or None."""
    on_path = shutil.which("livekit-server")
    if on_path:
        return Path(on_path)
    cached = cache_binary_path(cache_dir)
    return cached if cached.is_file() and os.access(cached, os.X_OK) else None


def ensure_binary(cache_dir: Path = DEFAULT_CACHE_DIR, *, log: IO[str] | None = None) -> Path:
    """Return the server binary, building it with ``go install`` the first time.

    Raises:
        SetupError: neither the binary nor Go is available, or the build failed.
    """
    found = find_binary(cache_dir)
    if found:
        return found
    go = shutil.which("go")
    if not go:
        raise SetupError(
            "The LiveKit server is not installed and Go was not found.\n" + INSTALL_HELP
        )
    target = cache_binary_path(cache_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOBIN": str(target.parent), "CGO_ENABLED": "0"}
    if log:
        log.write(
            f"Building LiveKit server {LIVEKIT_VERSION} with go install (first run only)...\n"
        )
        log.flush()
    proc = subprocess.run(
        [go, "install", f"{LIVEKIT_MODULE}@{LIVEKIT_VERSION}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0 or not target.is_file():
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise SetupError(
            f"'go install {LIVEKIT_MODULE}@{LIVEKIT_VERSION}' failed:\n{tail}\n" + INSTALL_HELP
        )
    return target


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if both TCP and UDP ``port`` can be bound on ``host``."""
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free for both TCP and UDP right now."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port_is_free(port, host):
            return port
    raise RuntimeError("no free port found")


def dies_with_parent(argv: list[str], sig: str = "KILL") -> list[str]:
    """``argv`` run so that Linux sends it ``sig`` when the process starting it dies, even
    by SIGKILL: under util-linux's ``setpriv --pdeathsig``, which sets it and then execs
    ``argv`` (same pid). Without ``setpriv`` (not Linux) ``argv`` is returned as it is.

    Without this a killed test run or demo leaves a LiveKit server holding its ports. KILL,
    not TERM: LiveKit's graceful drain can take many seconds, and nobody waits for it.

    Not a ``preexec_fn``: that runs Python in the forked child of a process with many
    threads (the LiveKit SDK's, asyncio's), and its ``ctypes`` lookup of ``prctl`` took the
    dynamic loader's lock, which another thread could hold at the fork: a loaded test run
    hung 300 s in ``Popen`` that way, the child never reaching exec.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None or not sys.platform.startswith("linux"):
        return list(argv)
    return [setpriv, f"--pdeathsig={sig}", "--", *argv]


# How long LiveKit keeps a room it created on a join with nobody but agents in it: a room
# nobody (no person) ever joined closes EMPTY_TIMEOUT s after it was made, a room people left
# DEPARTURE_TIMEOUT s after the last one left. Greenroom creates its rooms with its own.
EMPTY_TIMEOUT = 60
DEPARTURE_TIMEOUT = 5

NODE_SELECTORS = ("any", "sysload", "cpuload")
"""LiveKit's ``node_selector`` kinds that make sense without regions: which node gets a new
room. ``sysload`` and ``cpuload`` skip nodes above 0.9 load per CPU and then take the
least-loaded one; ``any`` (LiveKit's default) picks at random."""


def _cluster_yaml(redis: str | None, node_selector: str | None) -> str:
    """The ``redis:`` and ``node_selector:`` sections (empty for a single node)."""
    text = ""
    if redis is not None:
        text += f"redis:\n  address: {redis}\n"
    if node_selector is not None:
        sort_by = "random" if node_selector == "any" else node_selector
        text += f"node_selector:\n  kind: {node_selector}\n  sort_by: {sort_by}\n"
    return text


def _config_yaml(
    port: int,
    udp_port: int,
    keys: dict[str, str],
    empty_timeout: int = EMPTY_TIMEOUT,
    departure_timeout: int = DEPARTURE_TIMEOUT,
    redis: str | None = None,
    node_selector: str | None = None,
) -> str:
    key_lines = "\n".join(f"  {k}: {v}" for k, v in keys.items())
    return f"""\
port: {port}
bind_addresses: [127.0.0.1]
rtc:
  # media on loopback only: no ICE-TCP (LiveKit binds it on every interface), UDP on 127.0.0.1
  tcp_port: 0
  udp_port: {udp_port}
  ips:
    includes: [127.0.0.1/32]
  use_external_ip: false
  node_ip: 127.0.0.1
  enable_loopback_candidate: true
keys:
{key_lines}
room:
  empty_timeout: {empty_timeout}
  departure_timeout: {departure_timeout}
logging:
  level: info
""" + _cluster_yaml(redis, node_selector)


def _check_cluster_options(redis: str | None, node_selector: str | None) -> None:
    if redis is not None:
        host, sep, port = redis.rpartition(":")
        if not (sep and host and port.isdigit() and 0 < int(port) < 65536) or any(
            c.isspace() for c in redis
        ):
            raise ValueError(f"redis: expected 'host:port', got {redis!r}")
    if node_selector is not None and node_selector not in NODE_SELECTORS:
        raise ValueError(
            f"node_selector: expected one of {', '.join(NODE_SELECTORS)}, got {node_selector!r}"
        )


@dataclass
class LiveKitServer:
    """A LiveKit server child process on loopback.

    Usage::

        with LiveKitServer.start() as lk:
            print(lk.url)           # ws://127.0.0.1:7880

    Several nodes on one machine share a Redis (each on free ports of its own)::

        a = LiveKitServer.start(port=free_port(), redis="127.0.0.1:6379")
        b = LiveKitServer.start(port=free_port(), redis="127.0.0.1:6379")
    """

    url: str
    http_url: str
    api_key: str
    api_secret: str
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    _workdir: Path | None = field(default=None, repr=False)

    @classmethod
    def start(
        cls,
        *,
        port: int | None = None,
        api_key: str = DEV_API_KEY,
        api_secret: str = DEV_API_SECRET,
        binary: Path | None = None,
        log_path: Path | None = None,
        timeout: float = 30.0,
        empty_timeout: int = EMPTY_TIMEOUT,
        departure_timeout: int = DEPARTURE_TIMEOUT,
        redis: str | None = None,
        node_selector: str | None = None,
    ) -> LiveKitServer:
        """Start a server; ``port=None`` means 7880 if free, else any free port.

        ``empty_timeout``/``departure_timeout`` are the server's defaults for rooms it
        creates when someone joins (rooms created through the API set their own).

        ``redis`` (``host:port``) makes this server one node of the LiveKit deployment that
        shares that Redis; give every node the same key pair. ``node_selector`` (one of
        :data:`NODE_SELECTORS`) is how that deployment places new rooms on nodes.

        Raises:
            SetupError: the binary is missing, or the server exited or did not answer.
            ValueError: ``redis`` or ``node_selector`` is malformed.
        """
        _check_cluster_options(redis, node_selector)
        binary = binary or find_binary()
        if binary is None:
            raise SetupError("The LiveKit server is not installed.\n" + INSTALL_HELP)
        if port is None:
            port = (
                DEFAULT_PORT
                if port_is_free(DEFAULT_PORT)
                and port_is_free(DEFAULT_PORT + 1)
                and port_is_free(DEFAULT_PORT + 2)
                else free_port()
            )
        # the RTC port we pick ourselves can be taken between the pick and the server's bind:
        # then start again on a fresh one
        tries = 1 if port == DEFAULT_PORT else PORT_TRIES
        for attempt in range(1, tries + 1):
            udp_port = DEFAULT_PORT + 2 if port == DEFAULT_PORT else free_port()
            config = _config_yaml(
                port,
                udp_port,
                {api_key: api_secret},
                empty_timeout=empty_timeout,
                departure_timeout=departure_timeout,
                redis=redis,
                node_selector=node_selector,
            )
            server = cls._launch(binary, port, api_key, api_secret, config, log_path)
            try:
                server.wait_ready(timeout)
            except SetupError:
                server.stop()
                if attempt < tries and "address already in use" in server.log_tail():
                    continue
                raise
            except BaseException:
                server.stop()
                raise
            return server
        raise AssertionError("unreachable")  # the last try returns or raises

    @classmethod
    def _launch(
        cls,
        binary: Path,
        port: int,
        api_key: str,
        api_secret: str,
        config_text: str,
        log_path: Path | None,
    ) -> LiveKitServer:
        """Write the config to a fresh folder and start the server process (not waited on)."""
        workdir = Path(tempfile.mkdtemp(prefix="greenroom-livekit-"))
        config = workdir / "livekit.yaml"
        config.write_text(config_text)
        log_path = log_path or workdir / "livekit.log"
        log_file = open(log_path, "ab")  # noqa: SIM115 - owned by the child process
        proc = subprocess.Popen(
            dies_with_parent([str(binary), "--config", str(config)]),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, not the server directly
        )
        log_file.close()
        return cls(
            url=f"ws://127.0.0.1:{port}",
            http_url=f"http://127.0.0.1:{port}",
            api_key=api_key,
            api_secret=api_secret,
            process=proc,
            log_path=log_path,
            _workdir=workdir,
        )

    def token(self, identity: str, room: str, **grants: bool) -> str:
        """A join token for tests and tools; grants default to publish+subscribe+data."""
        video = api.VideoGrants(room_join=True, room=room, **grants)
        return (
            api.AccessToken(self.api_key, self.api_secret)
            .with_identity(identity)
            .with_grants(video)
            .to_jwt()
        )

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until the RoomService answers a real ListRooms call."""
        deadline = time.monotonic() + timeout
        token = (
            api.AccessToken(self.api_key, self.api_secret)
            .with_grants(api.VideoGrants(room_list=True))
            .to_jwt()
        )
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise SetupError(
                    f"LiveKit server exited with code {self.process.returncode}:\n"
                    + self.log_tail()
                )
            try:
                r = httpx.post(
                    f"{self.http_url}/twirp/livekit.RoomService/ListRooms",
                    json={},
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=2,
                )
                if r.status_code == 200:
                    return
                last = RuntimeError(f"HTTP {r.status_code}: {r.text[:200]}")
            except httpx.HTTPError as exc:
                last = exc
            time.sleep(0.1)
        raise SetupError(
            f"LiveKit server did not answer within {timeout:.0f}s ({last}):\n" + self.log_tail()
        )

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and remove its temporary config.

        LiveKit drains on the first SIGTERM and exits at once on the second; SIGKILL is the
        last resort after ``timeout``.
        """
        proc = self.process
        if proc is not None and proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGTERM, timeout)):
                proc.send_signal(sig)
                try:
                    proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            else:
                proc.kill()
                proc.wait(timeout)
        if self._workdir is not None:
            with contextlib.suppress(OSError):
                (self._workdir / "livekit.yaml").unlink()

    def __enter__(self) -> LiveKitServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
