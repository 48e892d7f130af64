"""Load what a session's first frame needs (compiled kernels, the built-in avatar's
renderer) before the first session asks for it: the API at start, each worker job process
while it waits for a job."""

from __future__ import annotations

import logging
import time

log = logging.getLogger("greenroom.warmup")


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
        from greenroom.avatars.local.participant import renderer_for

        get_provider("local")
        renderer_for("default").render_i420(0.0, 0.0, want_alpha=False)  # the default look
    except Exception as exc:
        log.warning("local avatar warm-up failed: %s", exc)
    log.info("warm-up done in %.0f ms", (time.perf_counter() - t0) * 1000)
