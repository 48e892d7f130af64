"""Background values as the API accepts them, and their translation to ``BackgroundSpec``.

Canonical strings stored in templates and sessions: ``none``, ``blur``, ``blur:<r>``,
``#rrggbb`` and library ids ``bg_<hex>``. Local file paths are refused over HTTP: a client
uploads the file to the library and uses its id.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from greenroom.backgrounds.spec import BackgroundSpec
from greenroom.errors import InvalidInput, NotFound
from greenroom.store import Repo

COLOR = re.compile(r"#[0-9a-fA-F]{6}")
LIBRARY_ID = re.compile(r"bg_[0-9a-f]{24}")
USAGE = (
    "use #RRGGBB, a library id (bg_…), 'blur', 'blur:<radius 1-100>' or 'none'; "
    "to use a file, upload it to /v1/backgrounds first"
)


def normalize(value: str | dict[str, Any], repo: Repo, field: str = "background") -> str:
    """The canonical form of ``value``; library ids must exist.

    Raises:
        InvalidInput: the value is malformed or names no library item (``field``).
    """
    if isinstance(value, dict):
        value = _from_object(value, field)
    v = value.strip()
    low = v.lower()
    if low.startswith("color:"):
        v, low = v[6:].strip(), low[6:].strip()
    if low.startswith("library:"):
        v, low = v[8:].strip(), low[8:].strip()
    if low == "none":
        return "none"
    if low == "blur":
        return "blur"
    if low.startswith("blur:"):
        radius = low[5:]
        if not radius.isdigit() or not 1 <= int(radius) <= 100:
            raise InvalidInput(
                f"blur radius must be a whole number 1-100, got {radius!r}", field=field
            )
        return f"blur:{int(radius)}"
    if COLOR.fullmatch(v):
        return v.lower()
    if LIBRARY_ID.fullmatch(low):
        try:
            repo.get_background(low)
        except NotFound:
            raise InvalidInput(f"no background {low!r} in the library", field=field) from None
        return low
    if "/" in v or "\\" in v or low.startswith(("image:", "video:")):
        raise InvalidInput(f"file paths are not accepted here; {USAGE}", field=field)
    raise InvalidInput(f"{value!r} is not a background: {USAGE}", field=field)


def _from_object(obj: dict[str, Any], field: str) -> str:
    kind = obj.get("kind")
    if kind == "none":
        return "none"
    if kind == "color":
        if not obj.get("color"):
            raise InvalidInput(
                "a color background needs 'color': '#RRGGBB'", field=f"{field}.color"
            )
        return str(obj["color"])
    if kind == "blur":
        radius = obj.get("blur_radius")
        return f"blur:{radius}" if radius else "blur"
    if kind in ("image", "video"):
        if not obj.get("library_id"):
            raise InvalidInput(
                f"an {kind} background needs 'library_id' (upload to /v1/backgrounds)",
                field=f"{field}.library_id",
            )
        return str(obj["library_id"])
    raise InvalidInput(f"unknown background kind {kind!r}", field=f"{field}.kind")


def to_spec_string(value: str, repo: Repo, library_root: Path) -> str:
    """The ``BackgroundSpec.parse`` string for a canonical value (library ids become paths)."""
    if LIBRARY_ID.fullmatch(value):
        row = repo.get_background(value)
        return f"{row.kind}:{library_root / row.stored_name}"
    return value


def to_spec(value: str, repo: Repo, library_root: Path) -> BackgroundSpec:
    """A ``BackgroundSpec`` for a canonical value."""
    return BackgroundSpec.parse(to_spec_string(value, repo, library_root))


def from_spec(spec: BackgroundSpec, library_root: Path) -> str:
    """The API value for a ``BackgroundSpec`` in use (for a switch made through the LiveKit
    RPC, which bypasses the API): library files map back to their ids."""
    kind = spec.kind
    if kind == "color" and spec.color:
        return str(spec.color).lower()
    if kind == "blur":
        return f"blur:{spec.blur_radius}"
    if kind in ("image", "video") and spec.path:
        path = Path(spec.path)
        if path.parent == Path(library_root) and LIBRARY_ID.fullmatch(path.stem):
            return path.stem
        return f"{kind}:{path.name}"  # a file outside the library
    return "none"
