"""Starting the parts of a session: the compositor with a template's settings, and warming
the frame kernels so the first session of a process is not the slow one."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, TypeVar, cast

from greenroom.api.services.contracts import BackgroundResolver, SessionCompositor

if TYPE_CHECKING:  # heavy imports (frame kernels): only where they are used
    from greenroom.avatars.base import RoomTarget
    from greenroom.backgrounds.spec import BackgroundSpec
    from greenroom.compositor.options import CompositorOptions, RoomTargetLike

log = logging.getLogger("greenroom.sessions")

T = TypeVar("T")


async def timed(aw: Awaitable[T], out: dict[str, float], key: str, t0: float) -> T:
    """Await ``aw``; record when it finished (ms after ``t0``) in ``out[key]``."""
    try:
        return await aw
    finally:
        out[key] = round((time.monotonic() - t0) * 1000, 1)


async def start_compositor(
    target: RoomTarget,
    avatar_identity: str,
    spec: BackgroundSpec,
    keying: Mapping[str, object],
    session_id: str,
    resolve_background: BackgroundResolver | None = None,
) -> SessionCompositor:
    """Start the session's compositor; ``resolve_background`` vets what RPC callers send."""
    from greenroom.compositor import Compositor

    options = compositor_options(keying, session_id=session_id)
    # RoomTarget is frozen; RoomTargetLike declares plain (settable) attributes it only reads
    room = cast("RoomTargetLike", target)
    return await Compositor.start(
        room, avatar_identity, spec, options, resolve_background=resolve_background
    )


def compositor_options(keying: Mapping[str, object], **extra: object) -> CompositorOptions:
    """``CompositorOptions`` from a template's keying settings. The chroma settings go in as
    ``chroma`` (a ``ChromaParams``) when the options take them; fields the options do not
    know are left at their defaults."""
    from greenroom.compositor import CompositorOptions

    names = {f.name for f in dataclasses.fields(CompositorOptions)}
    kwargs = {k: v for k, v in {**keying, **extra}.items() if k in names}
    if "chroma" in names and keying.get("mode", "chroma") != "segment":
        from greenroom.api.services.templates import chroma_params

        kwargs["chroma"] = chroma_params(dict(keying))
    return CompositorOptions(**kwargs)  # type: ignore[arg-type]  # checked in __post_init__
