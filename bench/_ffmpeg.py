"""Time the ffmpeg baseline (chromakey + despill + overlay) on raw frames, one thread.

Its alpha plane, for quality, comes from ``greenroom.keying.ffmpeg_ref``.
"""

from __future__ import annotations

import resource
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from greenroom.keying.ffmpeg_ref import THREADS
from greenroom.keying.ffmpeg_ref import ffmpeg_color as _hex


def ffmpeg_composite_ms(
    frames: list[np.ndarray],
    background: np.ndarray,
    key: tuple[int, int, int],
    total: int = 300,
    similarity: float = 0.1,
    blend: float = 0.05,
) -> tuple[float, float]:
    """(wall, CPU) ms/frame of chromakey + despill + overlay (rgb24 in, yuv420p out), one thread.

    The clip is looped to ``total`` frames so process start-up weighs little.
    """
    h, w = frames[0].shape[:2]
    with tempfile.TemporaryDirectory() as tmp:
        fg = Path(tmp) / "fg.rgb"
        bg = Path(tmp) / "bg.rgb"
        fg.write_bytes(b"".join(f.tobytes() for f in frames))
        bg.write_bytes(background.tobytes())
        loops = max(0, -(-total // len(frames)) - 1)
        cmd = ["ffmpeg", "-v", "error", *THREADS]
        cmd += ["-stream_loop", str(loops), "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}"]
        cmd += ["-r", "30", "-i", str(fg)]
        cmd += ["-stream_loop", "-1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}"]
        cmd += ["-r", "30", "-i", str(bg), "-filter_complex"]
        cmd += [
            f"[0:v]format=yuva420p,chromakey={_hex(key)}:{similarity}:{blend},"
            f"despill=type=green[k];[1:v][k]overlay=format=yuv420[o]"
        ]
        cmd += [
            "-map",
            "[o]",
            "-frames:v",
            str(total),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            "-y",
            "/dev/null",
        ]
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        wall = (time.perf_counter() - t) * 1000.0 / total
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) * 1000.0 / total
        return wall, cpu


def command_line(key: tuple[int, int, int], w: int, h: int) -> str:
    """The timed command, for the report."""
    return (
        f"ffmpeg -threads 1 -filter_threads 1 -filter_complex_threads 1 -f rawvideo -pix_fmt rgb24 "
        f"-s {w}x{h} -r 30 -i fg.rgb -stream_loop -1 -f rawvideo -pix_fmt rgb24 -s {w}x{h} -r 30 "
        f'-i bg.rgb -filter_complex "[0:v]format=yuva420p,chromakey={_hex(key)}:0.1:0.05,'
        f'despill=type=green[k];[1:v][k]overlay=format=yuv420[o]" -map "[o]" -frames:v 300 '
        f"-f rawvideo -pix_fmt yuv420p -y /dev/null"
    )
