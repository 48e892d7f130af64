"""``BackgroundSpec``: what a session's background is, parsed from a short string."""

from __future__ import annotations

import json
import os
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from greenroom.errors import InvalidInput
from greenroom.keying.params import format_color

Kind = Literal["color", "image", "video", "blur", "none"]
Fit = Literal["cover", "contain"]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".m4v", ".webm", ".mkv", ".avi", ".ogv"})
DEFAULT_BLUR_RADIUS = 15
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
USAGE = (
    "use '#RRGGBB', 'color:#RRGGBB', 'blur', 'blur:<radius 1-100>', 'none', "
    "'image:<path>', 'video:<path>' or a path to an image or video file"
)


class BackgroundSpec(BaseModel):
    """A background: a colour, an image, a looping video, a blur of the avatar's own
    picture, or none (the avatar's frame passes through).

    ``path`` is a local file; the API maps library ids to paths before building a spec.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Kind
    color: str | None = None
    path: str | None = None
    blur_radius: int = Field(DEFAULT_BLUR_RADIUS, ge=1, le=100)
    fit: Fit = "cover"

    @model_validator(mode="after")
    def _check(self) -> BackgroundSpec:
        if self.color is not None:
            if not _COLOR.match(self.color):
                raise ValueError(f"color must look like #RRGGBB, got {self.color!r}")
            object.__setattr__(self, "color", self.color.lower())
        if self.kind == "color" and self.color is None:
            raise ValueError("a color background needs color '#RRGGBB'")
        if self.kind in ("image", "video") and not self.path:
            raise ValueError(f"an {self.kind} background needs a path")
        return self

    @classmethod
    def parse(cls, value: str | BackgroundSpec) -> BackgroundSpec:
        """Parse ``"#00b140" | "color:#112233" | "blur" | "blur:25" | "none" |
        "image:/p.png" | "video:/p.mp4" | "/p.png"``.

        Raises:
            InvalidInput: (field ``background``) naming what is wrong.
        """
        if isinstance(value, BackgroundSpec):
            return value
        if not isinstance(value, str) or not value.strip():
            raise InvalidInput(f"background is empty; {USAGE}", field="background")
        v = value.strip()
        low = v.lower()
        try:
            if low == "none":
                return cls(kind="none")
            if low == "blur":
                return cls(kind="blur")
            if low.startswith("blur:"):
                radius = low[5:].strip()
                if not radius.isdigit() or not 1 <= int(radius) <= 100:
                    raise InvalidInput(
                        f"blur radius must be a whole number 1-100, got {radius!r}",
                        field="background",
                    )
                return cls(kind="blur", blur_radius=int(radius))
            if low.startswith("color:"):
                v = v[6:].strip()
                low = v.lower()
            if v.startswith("#"):
                if not _COLOR.match(v):
                    raise InvalidInput(f"{v!r} is not a colour like #00B140", field="background")
                return cls(kind="color", color=v)
            fit: Fit = "cover"
            for kind in ("image", "video"):
                if low.startswith(kind + ":"):
                    path, fit = _split_fit(v[len(kind) + 1 :].strip())
                    if not path:
                        raise InvalidInput(f"{kind}: needs a file path", field="background")
                    return cls(kind=kind, path=path, fit=fit)  # type: ignore[arg-type]
            path, fit = _split_fit(v)
            ext = os.path.splitext(path)[1].lower()
            if ext in IMAGE_EXTENSIONS:
                return cls(kind="image", path=path, fit=fit)
            if ext in VIDEO_EXTENSIONS:
                return cls(kind="video", path=path, fit=fit)
        except ValidationError as exc:
            raise InvalidInput(_first_error(exc), field="background") from None
        raise InvalidInput(f"{value!r} is not a background: {USAGE}", field="background")

    def to_attribute(self) -> str:
        """Compact JSON for participant attributes (file paths shortened to their name)."""
        data: dict[str, object] = {"kind": self.kind}
        if self.color:
            data["color"] = self.color
        if self.kind == "blur":
            data["blur_radius"] = self.blur_radius
        if self.path:
            data["name"] = os.path.basename(self.path)
            data["fit"] = self.fit
        return json.dumps(data, separators=(",", ":"))

    def __str__(self) -> str:
        if self.kind == "color":
            return str(self.color)
        if self.kind == "blur":
            return f"blur:{self.blur_radius}"
        if self.kind in ("image", "video"):
            suffix = "#contain" if self.fit == "contain" else ""
            return f"{self.kind}:{self.path}{suffix}"
        return "none"


def hex_color(rgb: tuple[int, int, int]) -> str:
    """``(0, 177, 64)`` -> ``"#00b140"``: lower case, as ``BackgroundSpec`` stores colours."""
    r, g, b = (int(c) for c in rgb)
    return format_color((r, g, b)).lower()


def _split_fit(path: str) -> tuple[str, Fit]:
    """``/p.png#contain`` -> ("/p.png", "contain")."""
    for fit in ("contain", "cover"):
        if path.lower().endswith("#" + fit):
            return path[: -len(fit) - 1], fit  # type: ignore[return-value]
    return path, "cover"


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    msg = str(err.get("msg", "invalid background"))
    return msg.removeprefix("Value error, ")
