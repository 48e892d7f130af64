"""Running the vendors' JavaScript SDKs: esbuild bundles from ``tests/js`` and Debian's
Chromium through Playwright (no browser download)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

JS = Path(__file__).resolve().parents[1] / "js"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]


def bundle(entry: str, out_dir: Path, package: str) -> str:
    """Bundle ``tests/js/<entry>`` into one IIFE script; fails clearly if npm ci was not run."""
    if not (JS / "node_modules" / package).is_dir():
        pytest.fail(f"tests/js packages missing ({package}): run `make setup` (npm ci in tests/js)")
    out = out_dir / (Path(entry).stem + ".js")
    subprocess.run(
        [
            str(JS / "node_modules" / ".bin" / "esbuild"),
            entry,
            "--bundle",
            "--format=iife",
            f"--outfile={out}",
            "--log-level=warning",
        ],
        cwd=JS,
        check=True,
        timeout=120,
    )
    return out.read_text()


def chromium() -> str:
    path = shutil.which("/usr/bin/chromium") or shutil.which("chromium")
    if not path:
        pytest.fail("Chromium is not installed (apt-get install chromium; `make setup` does it)")
    return path
