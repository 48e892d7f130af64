"""The compositor's long-running tasks: started by name, a failure reported once, all ended
together (each within the bounded wait of :func:`~greenroom.compositor.video.bounded`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from greenroom.compositor.video import bounded

logger = logging.getLogger("greenroom.compositor")


class TaskSet:
    """Tasks that live as long as the compositor; ``on_failure(reason)`` ends it when one
    of them fails while it is running."""

    def __init__(self, session: str, on_failure: Callable[[str], object]) -> None:
        self._session = session
        self._on_failure = on_failure
        self._tasks: set[asyncio.Task[None]] = set()
        self._ending = False

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    async def cancel_all(self) -> None:
        """Cancel every task and wait for each (bounded); failures from here on are expected."""
        self._ending = True
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        for t in tasks:
            await bounded(t)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or self._ending:
            return
        exc = task.exception()
        if exc is not None:
            logger.error(
                "compositor task %s failed",
                task.get_name(),
                exc_info=exc,
                extra={"session": self._session},
            )
            self._on_failure(f"internal error in {task.get_name()}: {exc}")
