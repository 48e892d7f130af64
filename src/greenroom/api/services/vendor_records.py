"""Vendor sessions a killed process may have left running, stopped on the next start.

The session row records the vendor's session reference (see ``launch.py``) the moment the
vendor answers, and clears it once the avatar closed cleanly. A reference still there on start
belongs to a process that died between the vendor's create and our stop: a paid session
nothing else would ever stop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection

from greenroom.config import Settings
from greenroom.errors import GreenroomError, NotFound
from greenroom.store import Repo
from greenroom.store.repo import VENDOR_CLEARED

log = logging.getLogger("greenroom.sessions")

VENDOR_STOP_TIMEOUT = 30.0  # seconds one leftover vendor session's stop may take on start


async def stop_leftover_vendor_sessions(
    repo: Repo, settings: Settings, *, only: Collection[str]
) -> list[str]:
    """Stop the vendor sessions the database says may still be running on the rows ``only``
    (which the caller took over: no process runs them), and clear them from their row. One the
    vendor cannot stop now (unreachable, no key) stays recorded for a later sweep. Returns the
    session ids whose vendor session was cleared."""
    from greenroom.avatars import VendorSessionRef, stop_vendor_session

    cleared = []
    for row in await asyncio.to_thread(repo.vendor_sessions):
        if row.id not in only or row.vendor is None or row.vendor_session_id is None:
            continue
        ref = VendorSessionRef(row.vendor, row.vendor_session_id, row.vendor_stop_token)
        try:
            was_running = await asyncio.wait_for(
                stop_vendor_session(ref, settings=settings), VENDOR_STOP_TIMEOUT
            )
        except NotFound as exc:  # no such vendor provider any more: nothing can stop it
            log.warning("session %s: %s", row.id, exc.message)
            was_running = False
        except Exception as exc:  # kept: the next restart tries again
            why = exc.message if isinstance(exc, GreenroomError) else type(exc).__name__
            log.warning(
                "session %s: could not stop %s session %s: %s",
                row.id,
                ref.vendor,
                ref.session_id,
                why,
            )
            continue
        await asyncio.to_thread(repo.update_session, row.id, **VENDOR_CLEARED)
        cleared.append(row.id)
        log.info(
            "session %s: %s session %s %s",
            row.id,
            ref.vendor,
            ref.session_id,
            "stopped after a restart" if was_running else "had already ended",
            extra={"session": row.id, "event": "vendor_stopped", "vendor": ref.vendor},
        )
    return cleared
