"""Background sources: each gives an I420 background frame for a size and a time.

``open_background(spec)`` validates and opens the source (file reads happen here, not
per frame); ``source.frame_i420(width, height, t, avatar)`` is called once per output
frame from the compositor's worker thread and must be cheap: images are scaled once
per output size, videos are decoded ahead on a thread of their own.
"""

from __future__ import annotations

import collections
import logging
import threading
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from greenroom.backgrounds.spec import BackgroundSpec
from greenroom.errors import InvalidInput
from greenroom.keying import _kernels as K
from greenroom.keying.frame import I420Frame
from greenroom.keying.params import parse_color

logger = logging.getLogger(__name__)

MAX_IMAGE_PIXELS = 40_000_000


class BackgroundSource(Protocol):
    spec: BackgroundSpec

    def frame_i420(
        self, width: int, height: int, t: float, avatar: I420Frame | None
    ) -> I420Frame | None:
        """The background for an output of ``width x height`` at ``t`` seconds, or None
        to show the avatar's frame unchanged."""
        ...

    def close(self) -> None: ...


class NoneSource:
    """No background replacement: the avatar's frame passes through."""

    def __init__(self, spec: BackgroundSpec):
        self.spec = spec

    def frame_i420(
        self, width: int, height: int, t: float, avatar: I420Frame | None
    ) -> I420Frame | None:
        return None

    def close(self) -> None:
        pass


class ColorSource:
    """One colour."""

    def __init__(self, spec: BackgroundSpec):
        self.spec = spec
        self.rgb = parse_color(spec.color or "#000000", field="background")
        self._cache: I420Frame | None = None

    def frame_i420(self, width: int, height: int, t: float, avatar: I420Frame | None) -> I420Frame:
        f = self._cache
        if f is None or f.size != (width, height):
            f = self._cache = I420Frame.blank(width, height, self.rgb)
        return f

    def close(self) -> None:
        pass


def fit_rgb(
    img: Image.Image, width: int, height: int, fit: str, fill: tuple[int, int, int]
) -> np.ndarray:
    """Scale a Pillow image to cover (crop) or fit inside (letterbox with ``fill``)."""
    if fit == "cover":
        out = ImageOps.fit(img, (width, height), Image.Resampling.BILINEAR)
    else:
        inner = ImageOps.contain(img, (width, height), Image.Resampling.BILINEAR)
        out = Image.new("RGB", (width, height), fill)
        out.paste(inner, ((width - inner.width) // 2, (height - inner.height) // 2))
    return np.asarray(out.convert("RGB"))


class ImageSource:
    """A still image, scaled once per output size (cover or contain) and kept as I420."""

    def __init__(self, spec: BackgroundSpec):
        self.spec = spec
        path = Path(spec.path or "")
        if not path.is_file():
            raise InvalidInput(f"background image {path} does not exist", field="background")
        try:
            with Image.open(path) as img:
                if img.width * img.height > MAX_IMAGE_PIXELS:
                    raise InvalidInput(
                        f"background image {path.name} is {img.width}x{img.height}, over "
                        f"{MAX_IMAGE_PIXELS // 1_000_000} Mpx",
                        field="background",
                    )
                img = ImageOps.exif_transpose(img)
                if img.mode in ("RGBA", "LA", "P"):
                    img = img.convert("RGBA")
                    base = Image.new("RGBA", img.size, (*self._fill(), 255))
                    img = Image.alpha_composite(base, img)
                self.image = img.convert("RGB")
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise InvalidInput(
                f"cannot read background image {path.name}: {exc}", field="background"
            ) from None
        self._cache: dict[tuple[int, int], I420Frame] = {}
        self._lock = threading.Lock()

    def _fill(self) -> tuple[int, int, int]:
        return parse_color(self.spec.color, field="background") if self.spec.color else (0, 0, 0)

    def frame_i420(self, width: int, height: int, t: float, avatar: I420Frame | None) -> I420Frame:
        key = (width, height)
        f = self._cache.get(key)
        if f is None:
            with self._lock:
                rgb = fit_rgb(self.image, width, height, self.spec.fit, self._fill())
                f = I420Frame.from_rgb(np.ascontiguousarray(rgb))
                if len(self._cache) >= 4:
                    self._cache.clear()
                self._cache[key] = f
        return f

    def close(self) -> None:
        self._cache.clear()


class VideoSource:
    """A looping video, decoded ahead on its own thread, frame chosen by time.

    Time starts at the first ``frame_i420`` call; the video loops for ever. When the
    decoder falls behind, the latest decoded frame is shown (the render never waits,
    except up to ``first_frame_timeout`` for the first frame at a new size).
    """

    QUEUE = 6
    first_frame_timeout = 2.0

    def __init__(self, spec: BackgroundSpec):
        import av

        self.spec = spec
        path = Path(spec.path or "")
        if not path.is_file():
            raise InvalidInput(f"background video {path} does not exist", field="background")
        try:
            with av.open(str(path)) as c:
                if not c.streams.video:
                    raise InvalidInput(f"{path.name} has no video stream", field="background")
                first = next(c.decode(video=0), None)
                if first is None:
                    raise InvalidInput(
                        f"{path.name} has no decodable video frame", field="background"
                    )
        except InvalidInput:
            raise
        except (av.FFmpegError, OSError, StopIteration) as exc:
            raise InvalidInput(
                f"cannot read background video {path.name}: {exc}", field="background"
            ) from None
        self.path = path
        self._cond = threading.Condition()
        self._queue: collections.deque[tuple[float, I420Frame]] = collections.deque()
        self._size: tuple[int, int] | None = None
        self._generation = 0
        self._current: I420Frame | None = None
        self._t0: float | None = None
        self._stop = False
        self._thread: threading.Thread | None = None
        self.error: str | None = None

    # -- decoder thread
    def _run(self) -> None:
        import av

        loop = 0
        offset = 0.0
        while not self._stop:
            with self._cond:
                gen, size = self._generation, self._size
            assert size is not None
            last = 0.0
            step = 1 / 30
            try:
                with av.open(str(self.path)) as c:
                    stream = c.streams.video[0]
                    t_first: float | None = None
                    for frame in c.decode(stream):
                        ft = frame.time if frame.time is not None else last + step
                        if t_first is None:
                            t_first = ft
                        rel = ft - t_first
                        if rel > last:
                            step = rel - last
                        last = rel
                        img = self._convert(frame, size)
                        with self._cond:
                            while (
                                len(self._queue) >= self.QUEUE
                                and not self._stop
                                and gen == self._generation
                            ):
                                self._cond.wait(0.5)
                            if self._stop:
                                return
                            if gen != self._generation:
                                break
                            self._queue.append((offset + rel, img))
                            self._cond.notify_all()
                    else:
                        offset += last + step
                        loop += 1
                        continue
                    # the output size changed: start again at the same media time
                    offset = 0.0
            except Exception as exc:  # a broken file mid-way: keep the last frame shown
                self.error = str(exc)
                logger.warning("background video %s stopped: %s", self.path.name, exc)
                return

    def _convert(self, frame, size: tuple[int, int]) -> I420Frame:
        w, h = size
        fw, fh = frame.width, frame.height
        s = max(w / fw, h / fh) if self.spec.fit == "cover" else min(w / fw, h / fh)
        sw = max(2, round(fw * s / 2) * 2)
        sh = max(2, round(fh * s / 2) * 2)
        arr = frame.reformat(width=sw, height=sh, format="yuv420p").to_ndarray()
        y = arr[:sh]
        u = arr[sh : sh + sh // 4].reshape(sh // 2, sw // 2)
        v = arr[sh + sh // 4 :].reshape(sh // 2, sw // 2)
        if (sw, sh) == (w, h):
            return I420Frame(
                np.ascontiguousarray(y), np.ascontiguousarray(u), np.ascontiguousarray(v)
            )
        out = I420Frame.blank(w, h, parse_color(self.spec.color) if self.spec.color else (0, 0, 0))
        # centre: crop (cover) or paste (contain), on even offsets so chroma lines up
        ox = ((sw - w) // 4) * 2
        oy = ((sh - h) // 4) * 2
        cw, ch = out.u.shape[1], out.u.shape[0]
        if self.spec.fit == "cover":
            out.y[...] = y[oy : oy + h, ox : ox + w]
            out.u[...] = u[oy // 2 : oy // 2 + ch, ox // 2 : ox // 2 + cw]
            out.v[...] = v[oy // 2 : oy // 2 + ch, ox // 2 : ox // 2 + cw]
        else:
            px, py = -ox, -oy
            out.y[py : py + sh, px : px + sw] = y
            out.u[py // 2 : py // 2 + sh // 2, px // 2 : px // 2 + sw // 2] = u
            out.v[py // 2 : py // 2 + sh // 2, px // 2 : px // 2 + sw // 2] = v
        return out

    # -- render thread
    def frame_i420(self, width: int, height: int, t: float, avatar: I420Frame | None) -> I420Frame:
        with self._cond:
            if self._size != (width, height):
                self._size = (width, height)
                self._generation += 1
                self._queue.clear()
                self._current = None
                self._cond.notify_all()
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="greenroom-bgvideo", daemon=True
                    )
                    self._thread.start()
            if self._t0 is None:
                self._t0 = t
            media_t = t - self._t0
            if self._current is None:
                self._cond.wait_for(
                    lambda: bool(self._queue) or self._stop, self.first_frame_timeout
                )
            while self._queue and (self._current is None or self._queue[0][0] <= media_t):
                self._current = self._queue.popleft()[1]
                self._cond.notify_all()
            if self._current is None:  # nothing decoded yet: black, never block longer
                return I420Frame.blank(width, height)
            return self._current

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()


class BlurSource:
    """A blur of the avatar's own frame: box blurs on a downscaled copy, scaled back up."""

    def __init__(self, spec: BackgroundSpec):
        self.spec = spec
        r = spec.blur_radius
        self.factor = 4 if r >= 8 else (2 if r >= 3 else 1)
        self.radius = max(1, round(r / (2 * self.factor)))
        self._bufs: dict[str, np.ndarray] = {}
        self._out: I420Frame | None = None

    def _plane(self, src: np.ndarray, dst: np.ndarray, name: str) -> None:
        f = self.factor
        h, w = src.shape
        shape = (-(-h // f), -(-w // f))
        small = self._bufs.get(name)
        if small is None or small.shape != shape:
            small = self._bufs[name] = np.empty(shape, np.float32)
            self._bufs[name + "t"] = np.empty(shape, np.float32)
            self._bufs[name + "b"] = np.empty(shape, np.float32)
            self._bufs[name + "r"] = np.empty(w, np.float32)
            self._bufs[name + "u"] = np.empty((shape[0], w), np.float32)
        tmp, b = self._bufs[name + "t"], self._bufs[name + "b"]
        K.downscale_box(src, f, small, self._bufs[name + "r"])
        K.box_blur(small, self.radius, tmp, b)
        K.box_blur(b, self.radius, tmp, small)
        K.resize_bilinear(small, dst, self._bufs[name + "u"])

    def frame_i420(self, width: int, height: int, t: float, avatar: I420Frame | None) -> I420Frame:
        if avatar is None:
            return I420Frame.blank(width, height)
        out = self._out
        if out is None or out.size != avatar.size:
            out = self._out = I420Frame.empty(avatar.width, avatar.height)
        self._plane(avatar.y, out.y, "y")
        self._plane(avatar.u, out.u, "u")
        self._plane(avatar.v, out.v, "v")
        return out

    def close(self) -> None:
        self._bufs.clear()


def open_background(spec: BackgroundSpec | str) -> BackgroundSource:
    """Validate and open a background (reads image files, probes videos).

    Raises:
        InvalidInput: (field ``background``) a bad spec, a missing or unreadable file.
    """
    spec = BackgroundSpec.parse(spec)
    cls = {
        "none": NoneSource,
        "color": ColorSource,
        "image": ImageSource,
        "video": VideoSource,
        "blur": BlurSource,
    }[spec.kind]
    return cls(spec)
