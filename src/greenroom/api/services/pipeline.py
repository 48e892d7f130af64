"""Starting the parts of a session: the compositor with a template's settings, and warming
the frame kernels so the first session of a process is not the slow one."""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

log = logging.getLogger("greenroom.sessions")


def warm_up() -> None:
    """Load the frame kernels (keyer, compositing, built-in avatar) once; runs in a thread."""
    t0 = time.perf_counter()
    try:
        import greenroom.compositor  # noqa: F401
        from greenroom.backgrounds import BackgroundSpec, Scene
        from greenroom.keying import I420Frame

        scene = Scene(background=BackgroundSpec.parse("#0044ff"), mode="chroma")
        scene.render_i420(I420Frame.blank(1280, 720, (0, 177, 64)), 0.0)
    except Exception as exc:
        log.warning("compositing warm-up failed: %s", exc)
    try:
        from greenroom.avatars import get_provider
        from greenroom.avatars.local import AvatarRenderer

        get_provider("local")
        AvatarRenderer().render_i420(0.0, 0.0, want_alpha=False)
    except Exception as exc:
        log.warning("local avatar warm-up failed: %s", exc)
    log.info("warm-up done in %.0f ms", (time.perf_counter() - t0) * 1000)


async def timed(coro: Any, out: dict[str, float], key: str, t0: float) -> Any:
    """Await ``coro``; record when it finished (ms after ``t0``) in ``out[key]``."""
    try:
        return await coro
    finally:
        out[key] = round((time.monotonic() - t0) * 1000, 1)


async def start_compositor(
    target: Any,
    avatar_identity: str,
    spec: Any,
    keying: dict[str, Any],
    session_id: str,
    resolve_background: Any = None,
) -> Any:
    """Start the session's compositor; ``resolve_background`` vets what RPC callers send."""
    from greenroom.compositor import Compositor, CompositorOptions

    options = compositor_options(CompositorOptions, keying, session_id=session_id)
    return await Compositor.start(
        target, avatar_identity, spec, options, resolve_background=resolve_background
    )


def compositor_options(options_cls: Any, keying: dict[str, Any], **extra: Any) -> Any:
    """``CompositorOptions`` from a template's keying settings. The chroma settings go in as
    ``chroma`` (a ``ChromaParams``) when the options take them; fields the options do not
    know are left at their defaults."""
    names = field_names(options_cls)
    kwargs = {k: v for k, v in {**(keying or {}), **extra}.items() if k in names}
    if "chroma" in names and (keying or {}).get("mode", "chroma") == "chroma":
        from greenroom.api.services.templates import chroma_params

        kwargs["chroma"] = chroma_params(keying or {})
    return options_cls(**kwargs)


def field_names(cls: Any) -> set[str]:
    if dataclasses.is_dataclass(cls):
        return {f.name for f in dataclasses.fields(cls)}
    fields = getattr(cls, "model_fields", None)
    return set(fields) if fields else set()
