"""Session leases: several API processes (replicas) on one database share the sessions.

Every session row names the replica that runs it (``owner``) and until when that claim holds
(``lease_expires_at``). The replica writes both when it adds the row, renews the leases of
the sessions it runs every third of ``GREENROOM_LEASE_SECONDS`` (the heartbeat, one UPDATE)
and releases them when it stops. Another replica acts on a session only after taking it over
with one compare-and-set UPDATE (:meth:`~greenroom.store.repo.Repo.take_over`), which succeeds
only once the lease has ended, so two replicas never both act on one session. The sweep runs
the manager's ``reconcile`` every ``lease_seconds``: a surviving replica closes the sessions of
a dead peer (``service_restarted``) within about two lease lengths.

On one host, waiting is not needed: each replica holds an exclusive lock on a file named after
it in ``<data dir>/replicas/`` for as long as it runs (:class:`ReplicaLocks`). The kernel
drops the lock when the process ends, however it ends, so a lock another process can take
proves that replica gone, and its leases are released at once (a restarted ``greenroom serve``
corrects its predecessor's sessions as it starts).

If the database is unreachable, the heartbeat logs and keeps trying. Once it answers again,
the leases still held are renewed; a session another replica took over meanwhile (its lease
had lapsed) is no longer this replica's: its avatar and compositor here are closed and its
row, which the other replica has written, is left alone (the ``lost`` callback).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import hashlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, datetime, timedelta
from pathlib import Path

from greenroom.config import Settings
from greenroom.errors import ConfigError
from greenroom.store import Repo
from greenroom.store.errors import reason as db_reason

__all__ = ["Leases", "ReplicaLocks", "default_replica_id", "replica_id"]

log = logging.getLogger("greenroom.sessions")

LOCK_WAIT = 5.0  # s to wait for this replica's lock file (another process may test it briefly)
# this process's replica lock files: path -> (descriptor, holders)
_HELD: dict[str, tuple[int, int]] = {}


@functools.cache
def _derived(pid: int) -> str:
    return f"{socket.gethostname()}-{pid}"


def default_replica_id() -> str:
    """``<hostname>-<pid>``: this process's replica id when ``GREENROOM_REPLICA_ID`` is unset."""
    return _derived(os.getpid())[:100]


def replica_id(settings: Settings) -> str:
    return settings.replica_id or default_replica_id()


class ReplicaLocks:
    """Lock files in one folder, one per replica running on this host."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, replica: str) -> Path:
        return self.folder / f"{hashlib.sha256(replica.encode()).hexdigest()[:24]}.lock"

    def hold(self, replica: str) -> None:
        """Lock ``replica``'s file for as long as this process runs (or until :meth:`release`).

        Raises:
            ConfigError: a live process on this host already runs under that replica id.
        """
        path = self._path(replica)
        if str(path) in _HELD:
            fd, holders = _HELD[str(path)]
            _HELD[str(path)] = (fd, holders + 1)
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            if not _try_lock(fd):
                os.close(fd)
                if time.monotonic() > deadline:
                    raise ConfigError(
                        f"replica id {replica!r} is in use by another process on this host; "
                        "give each API process its own GREENROOM_REPLICA_ID"
                    )
                time.sleep(0.05)
                continue
            if not _still_at(fd, path):  # removed by a process that found it stale: again
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, replica.encode())
            _HELD[str(path)] = (fd, 1)
            return

    def release(self, replica: str) -> None:
        path = str(self._path(replica))
        if path not in _HELD:
            return
        fd, holders = _HELD.pop(path)
        if holders > 1:
            _HELD[path] = (fd, holders - 1)
            return
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)

    def ended(self) -> set[str]:
        """The replicas whose process on this host has ended (their file is removed)."""
        gone: set[str] = set()
        if not self.folder.is_dir():
            return gone
        for path in self.folder.glob("*.lock"):
            if str(path) in _HELD:
                continue
            try:
                fd = os.open(path, os.O_RDWR)
            except OSError:
                continue
            try:
                if not (_try_lock(fd) and _still_at(fd, path)):
                    continue  # alive, or just replaced
                name = os.read(fd, 400).decode(errors="replace")
                if name:
                    gone.add(name)
                os.unlink(path)  # while locked: its owner, if it comes back, makes a new one
            finally:
                os.close(fd)
        return gone


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _still_at(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


class Leases:
    """The heartbeat and the sweep of one session manager.

    ``owned`` gives the ids whose lease this replica holds (starting or running here);
    ``lost(id)`` is called for one another replica has taken over; ``sweep`` is the manager's
    ``reconcile``.
    """

    def __init__(
        self,
        settings: Settings,
        repo: Repo,
        replica: str,
        *,
        owned: Callable[[], Collection[str]],
        lost: Callable[[str], Awaitable[None]],
        sweep: Callable[[], Awaitable[object]],
    ) -> None:
        self.repo = repo
        self.replica = replica
        self.seconds = settings.lease_seconds
        self.locks = ReplicaLocks(settings.data_dir / "replicas")
        self._owned = owned
        self._lost = lost
        self._sweep = sweep
        self._tasks: list[asyncio.Task[None]] = []
        self._failing = False

    def until(self, now: datetime | None = None) -> datetime:
        """When a lease taken or renewed now ends."""
        return (now or datetime.now(UTC)) + timedelta(seconds=self.seconds)

    async def start(self) -> None:
        """Claim this replica's name on this host, release the leases an earlier process of
        the same name left, then heartbeat and sweep until :meth:`aclose`."""
        if self._tasks:
            return
        await asyncio.to_thread(self.locks.hold, self.replica)
        left = await asyncio.to_thread(self.repo.release_leases, self.replica)
        if left:
            log.info(
                "released %d lease(s) an earlier process of replica %s left", left, self.replica
            )
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._heartbeat()), loop.create_task(self._sweeping())]

    async def release_ended(self) -> None:
        """Release the leases of this host's replicas whose process has ended."""
        for name in await asyncio.to_thread(self.locks.ended):
            count = await asyncio.to_thread(self.repo.release_leases, name)
            log.info("replica %s has ended; released its %d lease(s)", name, count)

    async def renew(self) -> None:
        """One heartbeat: renew what this replica holds; hand over what another took."""
        ids = set(self._owned())
        if not ids:
            return
        try:
            held = await asyncio.to_thread(self.repo.renew_leases, self.replica, ids, self.until())
        except Exception as exc:  # the database is down: keep running, keep trying
            level = logging.DEBUG if self._failing else logging.WARNING
            log.log(level, "could not renew %d session lease(s): %s", len(ids), db_reason(exc))
            self._failing = True
            return
        if self._failing:
            log.info("session leases renewed again")
            self._failing = False
        for sid in ids - held:
            if sid in self._owned():  # not stopped meanwhile: another replica took it
                await self._lost(sid)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.seconds / 3)
            try:
                await self.renew()
            except Exception:  # never let one bad beat end the heartbeat
                log.exception("session lease heartbeat failed; trying again")

    async def _sweeping(self) -> None:
        while True:
            await asyncio.sleep(self.seconds)
            try:
                await self._sweep()
            except Exception as exc:
                log.warning("session sweep failed: %s", db_reason(exc))

    async def aclose(self) -> None:
        """Stop heartbeat and sweep and give up the lock (the leases are released by the
        manager, which knows which sessions are left)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await asyncio.to_thread(self.locks.release, self.replica)
