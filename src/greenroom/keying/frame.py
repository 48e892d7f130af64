"""``I420Frame``: the planar YUV 4:2:0 frame that LiveKit/WebRTC deliver and publish.

BT.601 limited range (Y 16..235, U/V 16..240), chroma centred between each 2x2 block of
luma samples, as libyuv does. Odd sizes carry ``ceil(W/2) x ceil(H/2)`` chroma samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from greenroom.keying import _kernels as K


def chroma_size(width: int, height: int) -> tuple[int, int]:
    """(chroma width, chroma height) of a 4:2:0 frame of the given luma size."""
    return (width + 1) // 2, (height + 1) // 2


def _check_rgb(rgb: np.ndarray, name: str = "frame") -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        shape = getattr(rgb, "shape", type(rgb).__name__)
        raise ValueError(f"{name} must be an (H, W, 3) uint8 RGB array, got shape {shape}")
    if rgb.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8 RGB, got dtype {rgb.dtype}")
    if rgb.shape[0] < 2 or rgb.shape[1] < 2:
        raise ValueError(f"{name} must be at least 2x2 pixels, got {rgb.shape[1]}x{rgb.shape[0]}")
    return rgb


def rgb_to_yuv(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """One BT.601 limited-range conversion (the same integer maths as the kernels)."""
    r, g, b = (int(c) for c in rgb)
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
    u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128
    v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128
    return y, u, v


@dataclass
class I420Frame:
    """A planar 4:2:0 frame: ``y`` (H, W), ``u`` and ``v`` (ceil(H/2), ceil(W/2)), all uint8.

    The planes may be views into a larger buffer (``from_buffer``); they are used in place.
    """

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray

    def __post_init__(self) -> None:
        for name in ("y", "u", "v"):
            plane = getattr(self, name)
            if not isinstance(plane, np.ndarray) or plane.dtype != np.uint8 or plane.ndim != 2:
                raise ValueError(f"I420Frame.{name} must be a 2-D uint8 array")
        h, w = self.y.shape
        cw, ch = chroma_size(w, h)
        if self.u.shape != (ch, cw) or self.v.shape != (ch, cw):
            raise ValueError(
                f"I420Frame chroma planes must be {ch}x{cw} for a {w}x{h} frame, "
                f"got u {self.u.shape} and v {self.v.shape}"
            )

    @property
    def planes(self) -> K.Planes:
        """(y, u, v) as the kernels take them."""
        return K.Planes(self.y, self.u, self.v)

    @property
    def width(self) -> int:
        return int(self.y.shape[1])

    @property
    def height(self) -> int:
        return int(self.y.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.width, self.height

    @staticmethod
    def nbytes_for(width: int, height: int) -> int:
        cw, ch = chroma_size(width, height)
        return width * height + 2 * cw * ch

    @classmethod
    def empty(cls, width: int, height: int) -> I420Frame:
        """An uninitialised frame backed by one contiguous buffer (see ``to_bytes``)."""
        buf = np.empty(cls.nbytes_for(width, height), np.uint8)
        return cls.from_buffer(buf, width, height)

    @classmethod
    def from_buffer(
        cls, buf: bytes | bytearray | memoryview | np.ndarray, width: int, height: int
    ) -> I420Frame:
        """Zero-copy views of a packed I420 buffer (Y then U then V, no row padding).

        A read-only ``bytes`` gives read-only planes; use ``bytearray`` to write in place.
        """
        if width < 2 or height < 2:
            raise ValueError(f"frame size must be at least 2x2, got {width}x{height}")
        arr = np.frombuffer(buf, np.uint8) if not isinstance(buf, np.ndarray) else buf.reshape(-1)
        need = cls.nbytes_for(width, height)
        if arr.size < need:
            raise ValueError(f"an I420 {width}x{height} frame needs {need} bytes, got {arr.size}")
        cw, ch = chroma_size(width, height)
        ys = width * height
        y = arr[:ys].reshape(height, width)
        u = arr[ys : ys + cw * ch].reshape(ch, cw)
        v = arr[ys + cw * ch : need].reshape(ch, cw)
        return cls(y, u, v)

    def to_bytes(self) -> bytes:
        """The packed I420 bytes (Y, U, V)."""
        return b"".join(np.ascontiguousarray(p).tobytes() for p in (self.y, self.u, self.v))

    def copy(self) -> I420Frame:
        out = I420Frame.empty(self.width, self.height)
        out.y[...] = self.y
        out.u[...] = self.u
        out.v[...] = self.v
        return out

    @classmethod
    def blank(cls, width: int, height: int, rgb: tuple[int, int, int] = (0, 0, 0)) -> I420Frame:
        """A frame of one colour."""
        f = cls.empty(width, height)
        y, u, v = rgb_to_yuv(rgb)
        f.y.fill(y)
        f.u.fill(u)
        f.v.fill(v)
        return f

    @classmethod
    def from_rgb(cls, rgb: np.ndarray, out: I420Frame | None = None) -> I420Frame:
        """Convert (H, W, 3) uint8 RGB; chroma is the mean of each 2x2 block."""
        rgb = _check_rgb(rgb)
        h, w = rgb.shape[:2]
        if out is None:
            out = cls.empty(w, h)
        elif out.size != (w, h):
            raise ValueError(f"out is {out.width}x{out.height}, the frame is {w}x{h}")
        K.rgb_to_i420(rgb, out.y, out.u, out.v)
        return out

    def to_rgb(self, out: np.ndarray | None = None) -> np.ndarray:
        """Convert to (H, W, 3) uint8 RGB, chroma upsampled bilinearly."""
        if out is None:
            out = np.empty((self.height, self.width, 3), np.uint8)
        elif out.shape != (self.height, self.width, 3) or out.dtype != np.uint8:
            raise ValueError(f"out must be ({self.height}, {self.width}, 3) uint8")
        K.i420_to_rgb(self.y, self.u, self.v, out)
        return out
