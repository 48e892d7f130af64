"""The keyers' settings (``ChromaParams``, ``SegmentParams``), validated once on creation."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar, Literal

from greenroom.errors import InvalidInput

_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")

#: The screen colour used until one is found in the picture.
DEFAULT_KEY = (0, 177, 64)

#: Which keyer a stream uses: a colour key against a screen, or person segmentation.
Mode = Literal["chroma", "segment"]
#: What a session asks for: one of the keyers, or ``auto`` (chosen per stream by looking).
KeyingMode = Literal["auto", "chroma", "segment"]
KEYING_MODES: tuple[str, ...] = ("auto", "chroma", "segment")


def parse_color(value: str | tuple[int, int, int], *, field: str = "color") -> tuple[int, int, int]:
    """``"#RRGGBB"`` (or an RGB tuple) -> (r, g, b); InvalidInput naming ``field`` otherwise."""
    if isinstance(value, tuple | list):
        if len(value) == 3 and all(isinstance(c, int) and 0 <= c <= 255 for c in value):
            return (int(value[0]), int(value[1]), int(value[2]))
        raise InvalidInput(f"{field} must be three integers 0..255, got {value!r}", field=field)
    m = _HEX.match(str(value).strip())
    if not m:
        raise InvalidInput(f"{field} must be a colour like #00B140, got {value!r}", field=field)
    h = m.group(1)
    return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))


def format_color(rgb: tuple[int, int, int]) -> str:
    return "#{:02X}{:02X}{:02X}".format(*rgb)


def _range(name: str, value: float, lo: float, hi: float) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not (lo <= value <= hi):
        raise InvalidInput(f"{name} must be between {lo} and {hi}, got {value!r}", field=name)


def _int_range(name: str, value: int, lo: int, hi: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise InvalidInput(f"{name} must be an integer {lo}..{hi}, got {value!r}", field=name)


@dataclass(frozen=True)
class ChromaParams:
    """Settings of ``ChromaKeyer``; every field is checked on creation and on ``replace``.

    Attributes:
        key_color: screen colour (r, g, b), or None to find it in the picture. The key
            works on the screen's dominant primary (green, blue or red screens).
        clip_black: raw key (the solved mix of screen and foreground, 0..1) at or below
            which a pixel is pure screen (alpha 0).
        clip_white: raw key at or above which a pixel is pure avatar (alpha 1); below 1
            because light wrapping around the avatar (spill) and shading make solid
            edges look partly mixed.
        choke: shifts both clip points; positive eats into the avatar's edge, negative grows it.
        despill: 0..1, how much remaining screen colour to remove from the avatar.
        despill_luma: 0..1, how much of the brightness the removed spill carried to put back.
        temporal: 0..0.95, how strongly alpha is pulled towards the previous frame's.
        temporal_threshold: alpha changes larger than this are motion and pass unfiltered.
        edge_eps: regularisation of the luma-guided edge model (luma levels squared);
            larger is softer.
        plate_interval: re-estimate the clean plate (screen colour per region) every N
            frames, and the local foreground plate halfway between (both on each of the
            first 4 frames of a stream).
        plate_cell: size of a clean-plate region in pixels (even).
        threads: rows are split across this many threads (1 = the calling thread only).
    """

    key_color: tuple[int, int, int] | None = None
    clip_black: float = 0.0
    clip_white: float = 0.85
    choke: float = 0.0
    despill: float = 1.0
    despill_luma: float = 1.0
    temporal: float = 0.5
    temporal_threshold: float = 0.05
    edge_eps: float = 1.0
    plate_interval: int = 4
    plate_cell: int = 16
    threads: int = 1

    #: Fields a running session may change (``ChromaKeyer.set_params``).
    LIVE: ClassVar[frozenset[str]] = frozenset(
        {
            "key_color",
            "clip_black",
            "clip_white",
            "choke",
            "despill",
            "despill_luma",
            "temporal",
            "temporal_threshold",
            "edge_eps",
        }
    )

    def __post_init__(self) -> None:
        if self.key_color is not None:
            object.__setattr__(self, "key_color", parse_color(self.key_color, field="key_color"))
            r, g, b = self.key_color
            srt = sorted((r, g, b))
            if srt[2] - srt[1] < 40:
                raise InvalidInput(
                    f"key_color {format_color(self.key_color)} is not a screen colour: "
                    "one primary must exceed the others by at least 40",
                    field="key_color",
                )
        _range("clip_black", self.clip_black, 0.0, 0.9)
        _range("clip_white", self.clip_white, 0.1, 1.0)
        if self.clip_white - self.clip_black < 0.05:
            raise InvalidInput(
                f"clip_white ({self.clip_white}) must exceed clip_black ({self.clip_black}) by 0.05",
                field="clip_white",
            )
        _range("choke", self.choke, -0.5, 0.5)
        _range("despill", self.despill, 0.0, 1.0)
        _range("despill_luma", self.despill_luma, 0.0, 1.0)
        _range("temporal", self.temporal, 0.0, 0.95)
        _range("temporal_threshold", self.temporal_threshold, 0.01, 1.0)
        _range("edge_eps", self.edge_eps, 0.01, 10_000.0)
        _int_range("plate_interval", self.plate_interval, 1, 10_000)
        _int_range("plate_cell", self.plate_cell, 4, 256)
        _int_range("threads", self.threads, 1, 64)
        if self.plate_cell % 2:
            raise InvalidInput(
                f"plate_cell must be even, got {self.plate_cell}", field="plate_cell"
            )

    def with_live(self, **changes: Any) -> ChromaParams:
        """A copy with live-changeable fields replaced (validated again)."""
        names = {f.name for f in fields(self)}
        for key in changes:
            if key not in names:
                raise InvalidInput(f"unknown keying setting {key!r}", field=key)
            if key not in self.LIVE:
                raise InvalidInput(f"{key} cannot change while a session runs", field=key)
        return replace(self, **changes)


@dataclass(frozen=True)
class SegmentParams:
    """Settings of ``SegmentationKeyer``; every field is checked on creation and on ``replace``.

    Attributes:
        radius: guided-filter window radius at model resolution (1..16).
        eps: guided-filter regularisation (luma levels squared); larger is softer.
        temporal: 0..0.95, pull of the previous mask where it barely changed.
        low, high: model probabilities mapped to alpha 0 and 1 (the model is cautious on
            clothing, so ``high`` sits well below 1).
        threads: interpreter threads and compositing threads.
    """

    radius: int = 2
    eps: float = 20.0
    temporal: float = 0.5
    low: float = 0.1
    high: float = 0.4
    threads: int = 1

    def __post_init__(self) -> None:
        _int_range("radius", self.radius, 1, 16)
        _range("eps", self.eps, 0.01, 10_000.0)
        _range("temporal", self.temporal, 0.0, 0.95)
        _range("low", self.low, 0.0, 1.0)
        _range("high", self.high, 0.0, 1.0)
        if self.high - self.low < 0.05:
            raise InvalidInput(
                f"high ({self.high}) must exceed low ({self.low}) by 0.05", field="high"
            )
        _int_range("threads", self.threads, 1, 64)
