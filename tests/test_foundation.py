"""Settings, token scopes and the LiveKit server manager's failure paths."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest
from livekit import api
from typer.testing import CliRunner

from greenroom import tokens
from greenroom.cli import app
from greenroom.config import Settings
from greenroom.errors import SetupError
from greenroom.livekit_server import DEFAULT_PORT, LiveKitServer, ensure_binary, port_is_free

pytestmark = pytest.mark.unit


def test_settings_read_prefixed_env_and_hide_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GREENROOM_LIVEKIT_URL", "ws://127.0.0.1:9999")
    monkeypatch.setenv("GREENROOM_LIVEKIT_API_SECRET", "s3cr3t-value-that-must-not-leak")
    monkeypatch.setenv("GREENROOM_API_KEY", "api-key-that-must-not-leak")
    s = Settings()
    assert s.livekit_url == "ws://127.0.0.1:9999"
    assert s.livekit_api_secret.get_secret_value() == "s3cr3t-value-that-must-not-leak"
    shown = repr(s) + str(s) + s.model_dump_json()
    assert "s3cr3t" not in shown and "must-not-leak" not in shown


def test_default_database_is_sqlite_in_data_dir(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path)
    assert s.resolved_database_url == f"sqlite:///{tmp_path / 'greenroom.db'}"


def test_viewer_token_subscribes_only_and_expires() -> None:
    token = tokens.viewer_token("devkey", "secret", room="r1", identity="viewer-1")
    claims = api.TokenVerifier("devkey", "secret").verify(token)
    assert claims.identity == "viewer-1"
    assert claims.video.room == "r1" and claims.video.room_join
    assert claims.video.can_subscribe and not claims.video.can_publish
    raw = jwt.decode(token, options={"verify_signature": False})
    assert 0 < raw["exp"] - raw["nbf"] <= tokens.VIEWER_TTL.total_seconds()


def test_agent_token_is_kind_agent_and_may_publish() -> None:
    token = tokens.agent_token(
        "devkey",
        "secret",
        room="r1",
        identity="greenroom-a",
        attributes={"greenroom.role": "compositor"},
    )
    claims = api.TokenVerifier("devkey", "secret").verify(token)
    assert claims.kind == "agent"
    assert claims.video.can_publish and claims.video.can_update_own_metadata
    assert claims.attributes == {"greenroom.role": "compositor"}


def test_missing_server_and_go_explains_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # neither livekit-server nor go
    with pytest.raises(SetupError) as err:
        ensure_binary(tmp_path / "cache")
    msg = str(err.value)
    assert "Go was not found" in msg
    for how in ("release binary", "package manager", "make setup", "cmd/server@v1.13.5"):
        assert how in msg


def test_a_server_that_exits_reports_its_exit_code(tmp_path: Path) -> None:
    with pytest.raises(SetupError, match="exited with code"):
        LiveKitServer.start(
            binary=Path("/bin/false"), port=None, log_path=tmp_path / "l.log", timeout=5
        )


@pytest.mark.livekit
def test_default_port_taken_falls_back_to_a_free_one(livekit: LiveKitServer) -> None:
    blocker = None
    if port_is_free(DEFAULT_PORT):
        blocker = socket.socket()
        blocker.bind(("127.0.0.1", DEFAULT_PORT))
        blocker.listen()
    try:
        server = LiveKitServer.start(binary=ensure_binary())
        try:
            assert not server.url.endswith(f":{DEFAULT_PORT}")
            server.wait_ready(5)
        finally:
            server.stop()
        assert server.process is not None and server.process.poll() is not None
    finally:
        if blocker:
            blocker.close()


def test_cli_lists_commands() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "livekit-server" in result.output and "setup" in result.output


@pytest.mark.livekit
def test_server_dies_with_a_killed_parent(livekit: LiveKitServer, tmp_path: Path) -> None:
    """A SIGKILLed test run or demo must not leave a LiveKit server holding its ports."""
    script = tmp_path / "parent.py"
    script.write_text(
        "import time\n"
        "from greenroom.livekit_server import LiveKitServer, free_port\n"
        "s = LiveKitServer.start(port=free_port())\n"
        "print(s.process.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert _alive(child)
    finally:
        parent.kill()
        parent.wait(10)
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child), "the LiveKit server outlived its killed parent"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose (its parent was killed; init reaps it).
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ")[1][0] != "Z"
