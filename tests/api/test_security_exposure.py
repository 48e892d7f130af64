"""Safe defaults: the development LiveKit secret never leaves loopback.

``greenroom serve`` and ``greenroom worker`` run as real subprocesses with a clean
environment (no ``.env``: the working folder is a fresh temporary one).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr
from typer.testing import CliRunner

from greenroom.cli import app as cli_app
from greenroom.config import Settings, UnsafeExposure, check_exposure, is_loopback
from greenroom.livekit_server import free_port

pytestmark = pytest.mark.unit

CLI = [sys.executable, "-c", "from greenroom.cli import main; main()"]


def _run_cli(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GREENROOM_")}
    clean.update(GREENROOM_DATA_DIR=str(tmp_path / "data"), **env)
    # A command that does not refuse would run until killed: the timeout fails the test.
    return subprocess.run(
        [*CLI, *args], cwd=tmp_path, env=clean, capture_output=True, text=True, timeout=120
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def test_serve_on_every_interface_with_dev_credentials_exits_2(tmp_path: Path) -> None:
    port = str(free_port())
    r = _run_cli(["serve"], tmp_path, GREENROOM_API_HOST="0.0.0.0", GREENROOM_API_PORT=port)
    assert r.returncode == 2, r.stderr
    err = _one_line(r.stderr)
    assert "GREENROOM_LIVEKIT_API_SECRET" in err
    assert "'0.0.0.0'" in err and "greenroom secret" in err
    assert not (tmp_path / "data" / "greenroom.db").exists()  # refused before anything started


def test_serve_host_option_is_checked_too(tmp_path: Path) -> None:
    r = _run_cli(["serve", "--host", "::", "--port", str(free_port())], tmp_path)
    assert r.returncode == 2, r.stderr
    assert "GREENROOM_LIVEKIT_API_SECRET" in _one_line(r.stderr)


def test_worker_against_a_remote_livekit_with_dev_credentials_exits_2(tmp_path: Path) -> None:
    r = _run_cli(["worker"], tmp_path, GREENROOM_LIVEKIT_URL="wss://livekit.internal:7880")
    assert r.returncode == 2, r.stderr
    err = _one_line(r.stderr)
    assert "GREENROOM_LIVEKIT_API_SECRET" in err and "'livekit.internal'" in err


def test_an_invalid_setting_is_named_with_its_reason_and_exits_2(tmp_path: Path) -> None:
    r = _run_cli(["serve"], tmp_path, GREENROOM_VIDEO_PLAYOUT_DELAY_MS="-5")
    assert r.returncode == 2, r.stderr
    err = _one_line(r.stderr)
    assert "GREENROOM_VIDEO_PLAYOUT_DELAY_MS" in err and "greater than or equal to 0" in err
    assert "'-5'" in err and "Traceback" not in r.stderr


def test_the_check_passes_on_loopback_or_with_a_real_secret() -> None:
    dev = Settings(_env_file=None)
    for host in ("127.0.0.1", "127.0.0.53", "::1", "[::1]", "localhost"):
        assert is_loopback(host), host
        check_exposure(dev, host)
    for host in ("0.0.0.0", "::", "", "10.1.2.3", "greenroom.example"):
        with pytest.raises(UnsafeExposure, match="GREENROOM_LIVEKIT_API_SECRET"):
            check_exposure(dev, "127.0.0.1", host)
    empty = Settings(_env_file=None, livekit_api_secret=SecretStr(""))
    with pytest.raises(UnsafeExposure):
        check_exposure(empty, "0.0.0.0")
    real = Settings(_env_file=None, livekit_api_secret=SecretStr("x" * 43))
    check_exposure(real, "0.0.0.0", "10.1.2.3")


def test_secret_command_prints_a_fresh_strong_secret() -> None:
    runner = CliRunner()
    first = runner.invoke(cli_app, ["secret"])
    second = runner.invoke(cli_app, ["secret"])
    assert first.exit_code == 0 and second.exit_code == 0
    a, b = first.stdout.strip(), second.stdout.strip()
    assert len(a) >= 43 and a != b
    assert all(ch.isalnum() or ch in "-_" for ch in a)
