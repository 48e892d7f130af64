"""Send frames through the video codecs a live stream uses and decode them (PyAV, in memory).

What a LiveKit subscriber receives from an avatar is VP8 or H.264, 4:2:0, at about
1.7-2.5 Mbit/s for 720p. ``roundtrip`` encodes RGB frames that way and returns the decoded
I420 planes, for measuring keyers on what they will really see.

A running stream has no opening key frame and no cut: pass the frames that came before the
clip as ``lead_in`` (``family.render_clip(spec, start=-n)``), and the clip's frames come
back as P-frames with settled rate control. Without a lead-in the clip is encoded twice in
a row and the second pass is returned; its first frame then follows a cut from the clip's
last frame, which the codec takes a few frames to recover from.
"""

from __future__ import annotations

import io
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from av.container import OutputContainer
    from av.video.stream import VideoStream

#: Low-latency settings close to what WebRTC encoders run with (no look-ahead, no B-frames,
#: rate-limited). VP8 runs at libvpx's "good" deadline, speed 5, one thread: its realtime
#: mode adapts to the wall clock, and a measuring instrument must give the same frames on a
#: busy machine as on an idle one.
CODECS = {
    "vp8": (
        "libvpx",
        "webm",
        {"deadline": "good", "cpu-used": "5", "lag-in-frames": "0", "error-resilient": "1"},
    ),
    "h264": (
        "libx264",
        "mp4",
        {"preset": "veryfast", "tune": "zerolatency", "x264-params": "scenecut=0:keyint=600"},
    ),
}
#: Pixels of a 720p frame: bit rates are given for 720p and scaled by frame area.
PIXELS_720P = 1280 * 720

Planes = tuple[np.ndarray, np.ndarray, np.ndarray]


def roundtrip(
    frames: list[np.ndarray],
    codec: str = "h264",
    kbps_720p: float = 2000.0,
    fps: float = 30.0,
    lead_in: list[np.ndarray] | None = None,
) -> list[Planes]:
    """Encode RGB uint8 frames with ``codec`` ("vp8" or "h264") at ``kbps_720p`` (scaled by
    frame area), 4:2:0, after ``lead_in`` (default: ``frames`` once more), and decode them;
    returns the (y, u, v) planes of ``frames``."""
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {sorted(CODECS)}, got {codec!r}")
    if not frames:
        raise ValueError("frames must not be empty")
    import av
    from av.video.stream import VideoStream

    name, container, options = CODECS[codec]
    h, w = frames[0].shape[:2]
    if h % 2 or w % 2:
        raise ValueError(f"frames must have even width and height, got {w}x{h}")
    lead = frames if lead_in is None else lead_in
    if any(f.shape != frames[0].shape for f in lead):
        raise ValueError(f"lead_in frames must be {w}x{h} like the clip's")
    bit_rate = int(kbps_720p * 1000 * (w * h) / PIXELS_720P)
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as c:
        st = c.add_stream(name, rate=Fraction(round(fps * 1000), 1000))
        assert isinstance(st, VideoStream)
        st.width, st.height = w, h
        st.pix_fmt = "yuv420p"
        st.bit_rate = bit_rate
        st.thread_count = 1  # one thread: the same frames every run (threads make rates drift)
        st.options = {
            **options,
            "maxrate": str(bit_rate),
            "minrate": str(bit_rate) if codec == "vp8" else "0",
            "bufsize": str(bit_rate // 2),
        }
        _encode(c, st, [*lead, *frames])
    out = _decode(buf)
    if len(out) != len(lead) + len(frames):
        raise RuntimeError(f"{codec}: decoded {len(out)} frames of {len(lead) + len(frames)}")
    return out[-len(frames) :]


def _encode(container: OutputContainer, stream: VideoStream, frames: list[np.ndarray]) -> None:
    """Encode RGB frames into an open PyAV output container's stream, then flush it."""
    import av

    for f in frames:
        for pkt in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
            container.mux(pkt)
    for pkt in stream.encode():
        container.mux(pkt)


def _decode(buf: io.BytesIO) -> list[Planes]:
    """Every frame of the encoded stream in ``buf``, as (y, u, v) planes."""
    import av

    buf.seek(0)
    out: list[Planes] = []
    with av.open(buf, "r") as c:
        for fr in c.decode(video=0):
            arr = fr.reformat(format="yuv420p").to_ndarray()
            h, w = fr.height, fr.width
            out.append((arr[:h].copy(), _plane(arr, h, w, 1), _plane(arr, h, w, 2)))
    return out


def _plane(arr: np.ndarray, h: int, w: int, k: int) -> np.ndarray:
    """Chroma plane ``k`` (1 = U, 2 = V) of PyAV's packed yuv420p array (even sizes)."""
    q = h // 4
    start = h + (k - 1) * q
    return arr[start : start + q].reshape(h // 2, w // 2).copy()


def h264_crf_roundtrip(frames: list[np.ndarray], fps: float = 30.0, crf: int = 20) -> list[Planes]:
    """libx264 4:2:0 at constant quality ``crf``, one pass (the synthetic bench's condition)."""
    import av
    from av.video.stream import VideoStream

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
        st = c.add_stream("libx264", rate=Fraction(round(fps * 1000), 1000))
        assert isinstance(st, VideoStream)
        st.width, st.height = frames[0].shape[1], frames[0].shape[0]
        st.pix_fmt = "yuv420p"
        st.options = {"crf": str(crf), "preset": "veryfast"}
        _encode(c, st, frames)
    return _decode(buf)
