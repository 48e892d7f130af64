"""The published package: ``pip wheel --no-deps .`` gives a wheel with the library, the
``greenroom`` command, the viewer's web files and the store migrations, and that wheel works
without the repository.

The wheel is installed with ``--no-deps`` into a fresh virtual environment of the base
interpreter (no system site-packages). Installing every dependency from the package index
would take many minutes, so the new environment reaches this one's third-party packages
through a ``.pth`` *path line*: Python appends that folder to ``sys.path`` but does not run
the ``.pth`` files inside it, so the editable install of this repository
(``__editable__.greenroom-*.pth``) stays out, and the only ``greenroom`` importable is the
wheel's. Every command runs from an empty folder with no ``PYTHONPATH``, and each checks
where ``greenroom`` was imported from.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = [pytest.mark.unit, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "greenroom"
SKIP = ("node_modules", "__pycache__", "*.egg-info")  # never copied nor packaged


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``pip wheel --no-deps`` on a copy of the project (no build folder left in the tree)."""
    tmp = tmp_path_factory.mktemp("wheel")
    project = tmp / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, project / name)
    shutil.copytree(ROOT / "src", project / "src", ignore=shutil.ignore_patterns(*SKIP))
    dist = tmp / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(project)])
    (built,) = dist.glob("greenroom-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh environment with the wheel installed and this one's dependencies on the path."""
    env_dir = tmp_path_factory.mktemp("venv") / "env"
    run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)])
    python = env_dir / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            text=True,
        ).strip()
    )
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "greenroom_test_dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
         "--no-index", str(wheel)])  # fmt: skip
    return env_dir


def run(cmd: list[object], cwd: Path | None = None, timeout: float = 600) -> str:
    """Run ``cmd`` without the repository anywhere in reach; its output, or a failure."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _shipped() -> list[str]:
    """What a user needs from ``src/greenroom``: every module, the viewer's built web files,
    the database migrations (not the web sources or their toolchain)."""
    out = []
    for p in PACKAGE.rglob("*"):
        rel = p.relative_to(PACKAGE)
        if not p.is_file() or {"node_modules", "__pycache__"} & set(rel.parts):
            continue
        path = rel.as_posix()
        if (
            (p.suffix == ".py" and not path.startswith("web/"))
            or path.startswith(("web/static/", "store/migrations/"))
            or path == "store/alembic.ini"
        ):
            out.append(path)
    return out


def test_wheel_holds_library_cli_web_and_migrations(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = {f"greenroom/{rel}" for rel in _shipped()}
    assert "greenroom/agents.py" in wanted and "greenroom/web/static/viewer.html" in wanted
    assert "greenroom/store/alembic.ini" in wanted
    assert any(n.startswith("greenroom/store/migrations/versions/") for n in wanted)
    assert any(n.startswith("greenroom/web/static/build/") for n in wanted), "run make setup"
    missing = sorted(wanted - names)
    assert not missing, f"not in the wheel (pyproject package-data?): {missing}"
    (entry,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "greenroom = greenroom.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()


def test_installed_wheel_runs_without_the_repository(venv: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    where = run(
        [venv / "bin" / "python", "-c",
         "import sys, greenroom, greenroom.agents, greenroom.api.app, greenroom.store;"
         "print(greenroom.__file__); print(greenroom.agents.add_background.__module__);"
         "print(*sys.path, sep='\\n')"],
        cwd=work,
    )  # fmt: skip
    first, module, *path = where.splitlines()
    assert Path(first).is_relative_to(venv), f"greenroom imported from {first}"
    assert module == "greenroom.agents"
    assert not any(p.startswith(str(ROOT)) and ".venv" not in p for p in path), path

    assert "key" in run([venv / "bin" / "greenroom", "--help"], cwd=work)

    # greenroom key: a green screen with a "presenter" block, keyed over blue
    rgb = np.zeros((180, 320, 3), np.uint8)
    rgb[:] = (0, 177, 64)
    rgb[50:150, 110:210] = (200, 120, 90)
    Image.fromarray(rgb).save(work / "in.png")
    run([venv / "bin" / "greenroom", "key", "in.png", "-b", "#0044ff", "-o", "out.png"], cwd=work)
    out = np.asarray(Image.open(work / "out.png").convert("RGB")).astype(int)
    assert np.abs(out[5:30, 5:60] - (0, 68, 255)).max() < 12  # screen -> background
    assert np.abs(out[70:130, 130:190] - (200, 120, 90)).max() < 12  # presenter kept
