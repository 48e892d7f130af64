"""Running the vendors' JavaScript SDKs: esbuild bundles from ``tests/js`` and Debian's
Chromium through Playwright (no browser download)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from fixtures.chromium import chromium_path

JS = Path(__file__).resolve().parents[1] / "js"


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


chromium = chromium_path
